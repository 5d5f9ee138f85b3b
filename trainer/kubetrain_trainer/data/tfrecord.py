"""tf.Example records in TFRecord files, parsed a batch at a time.

Local files go through tf.data's native reader (fastest). TensorFlow has no
HDFS filesystem, so remote files are copied to local scratch one file ahead
of that same reader (`copyahead`); only when two files do not fit the scratch
budget are they streamed through `fs` and framed here in Python, ~1,000
records per generator call (one call per record is ~50x slower; the framing
still costs ~40% of the throughput).

Every file is counted before training (`count`), which rejects a file that is
not TFRecord or is truncated with an error naming it. The native reader also
checks each record's data CRC; its "corrupted record" error names no file, so
`corruption_error` adds the remote file being read.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from kubetrain_operator.api import DataSpec, FeatureSpec
from kubetrain_trainer.data import copyahead, fs
from kubetrain_trainer.data.errors import DataError

log = logging.getLogger(__name__)

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


def scan(buf: bytes | mmap.mmap, path: str) -> int:
    """Records in a whole TFRecord file's bytes, reading only the 12-byte headers.

    The first header's CRC says the file is TFRecord; the last record must end
    exactly at the end of the file. The native reader checks the rest.

    Raises:
        DataError: not a TFRecord file, or a truncated last record.
    """
    size = len(buf)
    if size >= _HEADER.size and masked_crc32c(buf[:8]) != _HEADER.unpack_from(buf)[1]:
        raise DataError(f"{path}: not a TFRecord file (bad checksum at byte 0)")
    unpack, head, n, pos, last = _HEADER.unpack_from, _HEADER.size, 0, 0, 0
    while pos + head <= size:
        last = pos
        pos += head + unpack(buf, pos)[0] + 4
        n += 1
    if pos != size:
        raise DataError(f"{path}: truncated TFRecord at byte {last if pos > size else pos}")
    return n


def count(path: str, data: DataSpec | None = None) -> int:
    """Records in one file, checking its framing (no parsing).

    Local files are memory-mapped so only the pages holding headers are read;
    remote files are streamed once and framed in full.
    """
    if fs.is_remote(path):
        return sum(1 for _ in records(fs.filesystem(path).stream(path), path))
    local = path.removeprefix("file://")
    with open(local, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return scan(buf, path)


def dataset(files: list[str], data: DataSpec) -> tf.data.Dataset:
    """Serialized records of `files`, one element each, in file order."""
    if not fs.is_remote(files[0]):
        return tf.data.TFRecordDataset(files)
    sizes = [_size(f) for f in files]
    root = copyahead.scratch_root()
    need, room = copyahead.peak_bytes(sizes), copyahead.budget(root)
    if need <= room:
        return copyahead.dataset(files, tf.data.TFRecordDataset)
    log.warning(
        "TFRecord files need %d bytes of scratch in %s, %d allowed (%s): framing them in "
        "Python instead, which is slower",
        need,
        root,
        room,
        copyahead.SCRATCH_BYTES_ENV,
    )
    batches = tf.data.Dataset.from_generator(
        lambda: record_batches(files), output_signature=tf.TensorSpec([None], tf.string)
    )
    return batches.unbatch()


def _size(path: str) -> int:
    info = fs.filesystem(path).info(path)
    if info is None:
        raise DataError(f"{path}: input file disappeared")
    return info.size


def corruption_error(err: BaseException) -> DataError:
    """A DataError for TF's "corrupted record at N", naming the remote file that is corrupt.

    TF's message names no file. Each copy-ahead pipeline knows the last few
    files its reader took; the one whose record payload at offset N fails its
    checksum is named, or all of them when none can be singled out.
    """
    message = getattr(err, "message", None) or str(err)
    lines = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    # Inside `fit` TF's first line is only "Graph execution error:"; the cause
    # ("corrupted record at N") is further down.
    first = next((line for line in lines if "corrupted record" in line), lines[0])
    first = re.sub(r"^\{\{.*?\}\}\s*|\s*\[\[\{\{node .*$|\s*\[Op:.*$", "", first)  # op context
    where = copyahead.reading()
    if (at := _CORRUPT_AT.search(first)) and len(where) > 1:
        where = [f for f in where if _payload_corrupt_at(f, int(at.group(1)))] or where
    files = f" in {' or '.join(where)}" if where else ""
    return DataError(f"corrupt TFRecord data{files}: {first}")


_CORRUPT_AT = re.compile(r"corrupted record at (\d+)")


def _payload_corrupt_at(path: str, offset: int) -> bool:
    """Whether a record of `path` with a sound header has a payload at `offset` failing its CRC.

    TF reports a bad payload at the payload's offset, just after the header.
    Only that record is read (a ranged read); its header's CRC says a record
    starts there (checked here, 8 bytes), TF checks the payload. A corrupt
    header cannot be told from a wrong file this way, so it singles out none.
    """
    start = offset - _HEADER.size
    if start < 0:
        return False
    try:
        with fs.filesystem(path).open(path) as f:
            f.seek(start)
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return False  # the file ends before `offset`: not this one
            length, crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != crc:
                return False  # no record starts there
            record = header + f.read(length + 4)
    except (OSError, DataError):
        return False
    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as tmp:
        tmp.write(record)
        tmp.flush()
        try:
            for _ in tf.data.TFRecordDataset(tmp.name):
                pass
        except tf.errors.DataLossError:
            return True
    return False


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
