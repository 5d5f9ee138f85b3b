"""tf.Example records in TFRecord files, parsed a batch at a time.

Local files go through tf.data's native reader (fastest). TensorFlow has no
HDFS filesystem, so remote files are streamed through `fs` and framed here in
Python, ~1,000 records per generator call (one call per record is ~50x
slower). Only each record's length CRC is checked: it catches a file that is
not TFRecord; HDFS already checksums the bytes themselves end to end.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from kubetrain_operator.api import DataSpec, FeatureSpec
from kubetrain_trainer.data import fs
from kubetrain_trainer.data.errors import DataError

_DTYPES = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}
_HEADER = struct.Struct("<QI")  # record length, masked CRC32C of the length
BATCH = 1000


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
        table.append(n)
    return table


_CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC32C (pure Python: used on 8-byte length fields only)."""
    crc = 0xFFFFFFFF
    for byte in bytes(data):
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(chunks: Iterable[bytes], path: str) -> Iterator[bytes]:
    """The records of a TFRecord byte stream, whatever the chunk boundaries.

    Raises:
        DataError: a bad length checksum or a truncated last record.
    """
    buf = bytearray()
    pos = consumed = 0
    for chunk in chunks:
        del buf[:pos]
        consumed += pos
        pos = 0
        buf += chunk
        while len(buf) - pos >= _HEADER.size:
            length, crc = _HEADER.unpack_from(buf, pos)
            if masked_crc32c(memoryview(buf)[pos : pos + 8]) != crc:
                at = consumed + pos
                raise DataError(f"{path}: not a TFRecord file (bad checksum at byte {at})")
            end = pos + _HEADER.size + length + 4
            if end > len(buf):
                break
            yield bytes(buf[pos + _HEADER.size : end - 4])
            pos = end
    if pos != len(buf):
        raise DataError(f"{path}: truncated TFRecord at byte {consumed + pos}")


def record_batches(files: list[str]) -> Iterator[np.ndarray]:
    """Serialized records of remote files, ~BATCH at a time, file after file."""
    for path in files:
        batch: list[bytes] = []
        for record in records(fs.filesystem(path).stream(path), path):
            batch.append(record)
            if len(batch) == BATCH:
                yield np.array(batch, dtype=object)
                batch = []
        if batch:
            yield np.array(batch, dtype=object)


def feature_spec(data: DataSpec) -> dict[str, Any]:
    """The parse spec of `tf.io.parse_example` for the declared features + label."""

    def fixed(f: FeatureSpec) -> tf.io.FixedLenFeature:
        return tf.io.FixedLenFeature(f.shape, _DTYPES[f.dtype])

    spec = {f.name: fixed(f) for f in data.features}
    spec[data.label.name] = fixed(data.label)
    return spec


def split_features(data: DataSpec, parsed: dict[str, tf.Tensor]) -> tuple[Any, tf.Tensor]:
    """(features, label): one tensor when there is one feature, else a dict."""
    label = parsed[data.label.name]
    if len(data.features) == 1:
        return parsed[data.features[0].name], label
    return {f.name: parsed[f.name] for f in data.features}, label


def parse(raw_batches: tf.data.Dataset, data: DataSpec) -> tf.data.Dataset:
    """(features, label) from batches of serialized tf.Examples.

    Parsing after batching is one op call per batch, not per record.
    """
    spec = feature_spec(data)
    return raw_batches.map(
        lambda raw: split_features(data, tf.io.parse_example(raw, spec)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def count(path: str, data: DataSpec | None = None) -> int:
    """Records in one file (a scan of the framing, no parsing; remote files are read once)."""
    if fs.is_remote(path):
        return sum(1 for _ in records(fs.filesystem(path).stream(path), path))
    ds = tf.data.TFRecordDataset([path])
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def dataset(files: list[str], data: DataSpec) -> tf.data.Dataset:
    """Serialized records of `files`, one element each, in file order."""
    if not fs.is_remote(files[0]):
        return tf.data.TFRecordDataset(files)
    batches = tf.data.Dataset.from_generator(
        lambda: record_batches(files), output_signature=tf.TensorSpec([None], tf.string)
    )
    return batches.unbatch()


def write(path: str, features: dict[str, Any], num: int) -> None:
    """Write `num` tf.Examples from column arrays (tests, demo data, `kubetrain data`)."""
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(num):
            example = tf.train.Example(
                features=tf.train.Features(feature={k: _feature(v[i]) for k, v in features.items()})
            )
            writer.write(example.SerializeToString())


def _feature(value: Any) -> tf.train.Feature:
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=arr.ravel().tolist()))
    if arr.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=arr.ravel().tolist()))
    return tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[str(v).encode() for v in arr.ravel()])
    )
