"""Small real datasets that ship with packages, written as TFRecord shards.

The demo and the tests train on scikit-learn's digits (8x8 images, 10
classes): real data, no download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kubetrain_trainer.data import tfrecord


def digits(out_dir: str | Path, train_shards: int = 4, validation_shards: int = 2) -> Path:
    """Write digits as `train/part-*.tfrecord` and `validation/part-*.tfrecord`.

    Features: `pixels` float32 [8, 8, 1] scaled to [0, 1]; label: `label` int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

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
            path = out / split / f"part-{i:05d}.tfrecord"
            tfrecord.write(str(path), {"pixels": xs[idx], "label": ys[idx]}, len(idx))
    return out
