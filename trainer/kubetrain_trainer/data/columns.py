"""Columnar formats (Parquet, CSV): Arrow record batches to tf.data.

Both readers yield Arrow batches of a thousand rows or more; this module turns each into
one dict of numpy arrays per declared feature and label, so tf.data sees a
generator call per batch, not per row (then `unbatch`, shuffle, re-batch like
TFRecord). A feature of shape [8, 8, 1] is a list column of 64 values per row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from kubetrain_operator.api import DataSpec, FeatureSpec
from kubetrain_trainer.data.errors import DataError
from kubetrain_trainer.data.tfrecord import split_features

Columns = dict[str, np.ndarray]

_NUMPY = {"float32": np.float32, "int64": np.int64}
_TF = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}


def specs(data: DataSpec) -> list[FeatureSpec]:
    """The columns to read: the features, then the label."""
    return [*data.features, data.label]


def names(data: DataSpec) -> list[str]:
    return [f.name for f in specs(data)]


def _column(batch: Any, spec: FeatureSpec, path: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if spec.name not in batch.schema.names:
        raise DataError(
            f"{path}: no column {spec.name!r} (columns: {', '.join(batch.schema.names)})"
        )
    col = batch.column(spec.name)
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    if any(is_list(col.type) for is_list in lists):
        col = pc.list_flatten(col)
    if spec.dtype == "string":
        values = np.asarray(col.cast(pa.binary()).to_numpy(zero_copy_only=False), dtype=object)
    else:
        try:
            values = col.to_numpy(zero_copy_only=False).astype(_NUMPY[spec.dtype], copy=False)
        except (pa.ArrowException, ValueError, TypeError) as err:
            raise DataError(f"{path}: column {spec.name!r} is not {spec.dtype}: {err}") from err
    rows, per_row = batch.num_rows, math.prod(spec.shape)
    if values.size != rows * per_row:
        raise DataError(
            f"{path}: column {spec.name!r} has {values.size} values for {rows} rows; "
            f"shape {spec.shape} needs {per_row} per row"
        )
    return values.reshape([rows, *spec.shape])


def to_numpy(batch: Any, data: DataSpec, path: str) -> Columns:
    """One Arrow RecordBatch/Table as {column: array of shape [rows, *shape]}."""
    return {spec.name: _column(batch, spec, path) for spec in specs(data)}


def dataset(batches: Callable[[], Iterator[Columns]], data: DataSpec) -> tf.data.Dataset:
    """Rows (one dict each) from a generator of column batches."""
    signature = {s.name: tf.TensorSpec([None, *s.shape], _TF[s.dtype]) for s in specs(data)}
    return tf.data.Dataset.from_generator(batches, output_signature=signature).unbatch()


def parse(batches: tf.data.Dataset, data: DataSpec) -> tf.data.Dataset:
    """(features, label) from batched row dicts: already typed, only split."""
    return batches.map(lambda row: split_features(data, row))
