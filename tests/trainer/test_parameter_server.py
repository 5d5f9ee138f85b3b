"""ParameterServerStrategy through `kubetrain run`: tf_keras on the chief, servers elsewhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .runner import digits_job, predict_job, prediction_accuracy, run

REPLICAS = {"chief": {"replicas": 1}, "worker": {"replicas": 2}, "ps": {"replicas": 1}}


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_chief_two_workers_one_ps_train_digits(digits_dir: Path, tmp_path: Path) -> None:
    job = digits_job(digits_dir, tmp_path, replicas=REPLICAS, training={"epochs": 8})
    started = time.monotonic()
    result = run(job, tmp_path)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert "strategy parameter_server: 1 ps replicas" in out
    for replica in ("chief-0", "worker-0", "worker-1", "ps-0"):
        assert f"[{replica}]" in out
    # workers and ps stop by themselves once the chief has succeeded
    assert out.count("the reporter finished (succeeded): stopping") == 3, out[-4000:]
    saved = json.loads((tmp_path / "model" / "job.json").read_text())
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    assert (tmp_path / "model" / "model.keras").stat().st_size > 0
    # the tf_keras model loads and predicts too
    predicted = run(predict_job(job, tmp_path, digits_dir / "validation", "label"), tmp_path)
    assert predicted.returncode == 0, predicted.stdout[-4000:]
    assert "with tf_keras" in predicted.stdout
    rows, accuracy = prediction_accuracy(tmp_path)
    assert rows == 360 and accuracy >= 0.9, (rows, accuracy)
    print(f"val_accuracy {saved['metrics']['val_accuracy']:.4f} in {elapsed:.0f} s")
