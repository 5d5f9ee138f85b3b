"""CSV files with a header row, local or on HDFS; columns are picked by name.

Streamed through pyarrow's incremental reader, so a file of any size is read
in bounded memory. A cell holds one value: only features with one value per
row (shape [] or [1]) fit in CSV; use Parquet or TFRecord for tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from kubetrain_operator.api import DataSpec
from kubetrain_trainer.data import columns, fs
from kubetrain_trainer.data.errors import DataError

parse = columns.parse

_BLOCK = 1 << 20  # bytes per Arrow batch: thousands of rows of a typical table


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"float32": pa.float32(), "int64": pa.int64(), "string": pa.binary()}


def _reader(path: str, data: DataSpec) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wide = [s.name for s in columns.specs(data) if math.prod(s.shape) != 1]
    if wide:
        raise DataError(f"{path}: CSV holds one value per cell; {', '.join(wide)} need more")
    types = _arrow_types()
    convert = pacsv.ConvertOptions(
        include_columns=columns.names(data),
        column_types={s.name: types[s.dtype] for s in columns.specs(data)},
    )
    try:
        return pacsv.open_csv(
            fs.sequential(path),
            read_options=pacsv.ReadOptions(block_size=_BLOCK),
            convert_options=convert,
        )
    except pa.ArrowException as err:
        raise DataError(f"{path}: {err}") from err


def _batches(path: str, data: DataSpec) -> Iterator[Any]:
    import pyarrow as pa

    reader = _reader(path, data)
    try:
        yield from reader
    except pa.ArrowException as err:
        raise DataError(f"{path}: {err}") from err


def count(path: str, data: DataSpec) -> int:
    """Rows in one file (a full read: CSV has no footer)."""
    return sum(batch.num_rows for batch in _batches(path, data))


def batches(files: list[str], data: DataSpec) -> Iterator[columns.Columns]:
    for path in files:
        for batch in _batches(path, data):
            yield columns.to_numpy(batch, data, path)


def dataset(files: list[str], data: DataSpec) -> tf.data.Dataset:
    return columns.dataset(lambda: batches(files, data), data)


def write(path: str, table: Any) -> None:
    """Write an Arrow table with a header row to a local path or HDFS URI (tests, demo data)."""
    import pyarrow.csv as pacsv

    with fs.filesystem(path).create(path) as out:
        pacsv.write_csv(table, out)
