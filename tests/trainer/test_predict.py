"""task: predict: train digits, then predict with the exported model into Parquet."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from .runner import digits_job, predict_job, run


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_train_then_predict_writes_one_row_per_input(digits_dir: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    train = digits_job(digits_dir, tmp_path, replicas={"worker": {"replicas": 1}})
    trained = run(train, tmp_path)
    assert trained.returncode == 0, trained.stdout[-4000:]

    job = predict_job(train, tmp_path, digits_dir / "validation", id_key="label")
    output = tmp_path / "predictions" / "out.parquet"
    started = time.monotonic()
    result = run(job, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]

    table = pq.read_table(output)
    assert table.column_names == ["label", "prediction", "scores"]
    assert table.num_rows == 360  # digits' validation split, every record once
    labels = table.column("label").to_numpy()
    predictions = table.column("prediction").to_numpy()
    scores = np.stack(table.column("scores").to_numpy(zero_copy_only=False))
    assert scores.shape == (360, 10)
    np.testing.assert_array_equal(np.argmax(scores, axis=1), predictions)
    accuracy = float(np.mean(labels == predictions))
    assert accuracy >= 0.9, accuracy
    print(f"predict accuracy {accuracy:.4f}, {time.monotonic() - started:.0f} s")


@pytest.mark.trainer
def test_ids_come_from_the_declared_spec_else_are_strings() -> None:
    from kubetrain_operator.api import DataSpec
    from kubetrain_trainer.predict import input_spec, table

    data = DataSpec.model_validate(
        {
            "train": "t",
            "features": [{"name": "pixels", "shape": [2]}],
            "label": {"name": "label", "dtype": "int64"},
        }
    )
    assert input_spec(data, None, "label", "in").label.dtype == "int64"
    assert input_spec(data, None, "key", "in").label.dtype == "string"
    assert input_spec(data, None, None, "in").label.name == "pixels"
    out = table(np.array([b"a", b"b"], dtype=object), "key", np.array([[0.1], [0.7]]))
    assert out.column("key").to_pylist() == ["a", "b"]
    assert out.column("prediction").to_pylist() == pytest.approx([0.1, 0.7])
