"""Accuracy parity: 2-worker MultiWorkerMirroredStrategy matches 1 worker.

Same global batch (2 workers x 32 vs 1 worker x 64), epochs and seed, both
through `kubetrain run`; the final validation accuracies (from
<modelDir>/job.json) must agree within 1 point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer import runner

TOLERANCE = 0.01  # one accuracy point


def _val_accuracy(digits: Path, tmp_path: Path, workers: int, per_replica: int) -> float:
    tmp_path.mkdir()
    job = runner.digits_job(
        digits,
        tmp_path,
        replicas={"worker": {"replicas": workers}},
        training={"batchSizePerReplica": per_replica, "seed": 42},
    )
    result = runner.run(job, tmp_path, timeout=280)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = "multi_worker_mirrored" if workers > 1 else "one_device"
    assert f"strategy {expected}:" in result.stdout, result.stdout[-4000:]
    saved = json.loads((tmp_path / "model" / "job.json").read_text())
    return float(saved["metrics"]["val_accuracy"])


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_two_workers_match_one_worker_at_the_same_global_batch(
    digits_dir: Path, tmp_path: Path
) -> None:
    two = _val_accuracy(digits_dir, tmp_path / "two", workers=2, per_replica=32)
    one = _val_accuracy(digits_dir, tmp_path / "one", workers=1, per_replica=64)
    assert one >= 0.9 and two >= 0.9, (one, two)
    assert abs(two - one) <= TOLERANCE, f"2 workers {two:.4f} vs 1 worker {one:.4f}"
