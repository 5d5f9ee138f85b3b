"""Parquet files (Spark's output), local or on HDFS, read ~1,000 rows at a time.

Only the declared columns are read. The row count comes from the footer, so
counting a remote file costs one small read, not a pass over the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from kubetrain_operator.api import DataSpec
from kubetrain_trainer.data import columns, fs
from kubetrain_trainer.data.errors import DataError
from kubetrain_trainer.data.tfrecord import BATCH

parse = columns.parse


def _open(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(fs.filesystem(path).open(path))
    except pa.ArrowException as err:
        raise DataError(f"{path}: not a Parquet file: {err}") from err


def count(path: str, data: DataSpec | None = None) -> int:
    """Rows in one file, from its footer."""
    return int(_open(path).metadata.num_rows)


def batches(files: list[str], data: DataSpec) -> Iterator[columns.Columns]:
    """The declared columns of `files`, ~BATCH rows at a time, file after file."""
    wanted = columns.names(data)
    for path in files:
        parquet = _open(path)
        missing = sorted(set(wanted) - set(parquet.schema_arrow.names))
        if missing:
            raise DataError(
                f"{path}: no column(s) {', '.join(missing)} "
                f"(columns: {', '.join(parquet.schema_arrow.names)})"
            )
        for batch in parquet.iter_batches(batch_size=BATCH, columns=wanted):
            yield columns.to_numpy(batch, data, path)


def dataset(files: list[str], data: DataSpec) -> tf.data.Dataset:
    return columns.dataset(lambda: batches(files, data), data)


def write(path: str, table: Any, row_group_size: int | None = None) -> None:
    """Write an Arrow table to a local path or HDFS URI (tests, demo data)."""
    import pyarrow.parquet as pq

    with fs.filesystem(path).create(path) as out:
        pq.write_table(table, out, row_group_size=row_group_size)
