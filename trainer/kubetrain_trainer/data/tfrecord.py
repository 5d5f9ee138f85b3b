"""tf.Example records in TFRecord files, parsed a batch at a time."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kubetrain_operator.api import DataSpec, FeatureSpec

_DTYPES = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}


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


def parse_batches(raw_batches: tf.data.Dataset, data: DataSpec) -> tf.data.Dataset:
    """(features, label) from batches of serialized tf.Examples.

    Parsing after batching is one op call per batch, not per record.
    """
    spec = feature_spec(data)
    return raw_batches.map(
        lambda raw: split_features(data, tf.io.parse_example(raw, spec)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def count(files: list[str]) -> int:
    """Records in the files (a fast scan without parsing)."""
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 4) or None)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def write(path: str, features: dict[str, Any], num: int) -> None:
    """Write `num` tf.Examples from column arrays (tests, demo data, `kubetrain data`)."""
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(num):
            example = tf.train.Example(
                features=tf.train.Features(feature={k: _feature(v[i]) for k, v in features.items()})
            )
            writer.write(example.SerializeToString())


def _feature(value: Any) -> tf.train.Feature:
    import numpy as np

    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=arr.ravel().tolist()))
    if arr.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=arr.ravel().tolist()))
    return tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[str(v).encode() for v in arr.ravel()])
    )
