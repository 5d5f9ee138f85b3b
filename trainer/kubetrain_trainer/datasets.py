"""Small real datasets that ship with packages, written as TFRecord or Parquet shards.

The demo and the tests train on scikit-learn's digits (8x8 images, 10
classes): real data, no download. `write_digits` also puts them on HDFS.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from kubetrain_trainer.data import fs, parquet, tfrecord

Format = Literal["tfrecord", "parquet"]
FORMATS: tuple[Format, ...] = ("tfrecord", "parquet")


def digits(
    out_dir: str | Path,
    train_shards: int = 4,
    validation_shards: int = 2,
    format: Format = "tfrecord",
) -> Path:
    """Write digits as `train/part-*.<format>` and `validation/part-*.<format>` on local disk.

    Features: `pixels` float32 [8, 8, 1] scaled to [0, 1]; label: `label` int64.
    Parquet stores `pixels` as a list<float> column of 64 values per row, the
    layout Spark writes for an array<float> column.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if format not in FORMATS:
        raise ValueError(f"format: unknown {format!r}; known: {', '.join(FORMATS)}")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y.astype(np.int64), test_size=0.2, random_state=0, stratify=y
    )
    out = Path(out_dir)
    for split, xs, ys, shards in (
        ("train", x_train, y_train, train_shards),
        ("validation", x_val, y_val, validation_shards),
    ):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.array_split(np.arange(len(xs)), shards)):
            path = str(out / split / f"part-{i:05d}.{format}")
            if format == "parquet":
                parquet.write(path, _table(xs[idx], ys[idx]))
            else:
                tfrecord.write(path, {"pixels": xs[idx], "label": ys[idx]}, len(idx))
    return out


def _table(pixels: np.ndarray, labels: np.ndarray) -> pa.Table:
    per_row = int(np.prod(pixels.shape[1:]))
    offsets = np.arange(0, len(pixels) * per_row + 1, per_row, dtype=np.int32)
    values = pa.array(pixels.reshape(-1), type=pa.float32())
    return pa.table(
        {"pixels": pa.ListArray.from_arrays(offsets, values), "label": pa.array(labels)}
    )


def write_digits(out: str | Path, format: Format = "tfrecord") -> str:
    """`digits` to a local directory or an hdfs:// / viewfs:// URI; returns `out`.

    HDFS output is written to a local temporary directory first, then
    uploaded file by file (TensorFlow has no hdfs:// writer of its own).
    """
    out = str(out)
    if not fs.is_remote(out):
        return str(digits(out, format=format))
    with tempfile.TemporaryDirectory(prefix="kubetrain-data-") as tmp:
        fs.copy_tree(str(digits(tmp, format=format)), out)
    return out
