"""`kubetrain run`: real multi-process MultiWorkerMirroredStrategy training on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer import runner


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_two_workers_train_digits_to_90_percent(digits_dir: Path, tmp_path: Path) -> None:
    result = runner.run(runner.digits_job(digits_dir, tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "[worker-0]" in result.stdout and "[worker-1]" in result.stdout
    assert "strategy multi_worker_mirrored: 2 workers in TF_CONFIG" in result.stdout
    saved = json.loads((tmp_path / "model" / "job.json").read_text())
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    assert (tmp_path / "model" / "model.keras").stat().st_size > 0
    assert not (tmp_path / "work" / "backup").exists(), "backup kept after success"


@pytest.mark.trainer
@pytest.mark.timeout(300)
def test_a_failing_replica_stops_the_group(digits_dir: Path, tmp_path: Path) -> None:
    job = runner.digits_job(
        digits_dir,
        tmp_path,
        data={"validation": str(tmp_path / "missing" / "*.tfrecord")},
        runPolicy={"restartPolicy": "ExitCode"},
    )
    result = runner.run(job, tmp_path)
    assert result.returncode == 2, result.stdout[-4000:]
    assert "no input files match" in result.stdout
    assert "exited with code 2: " in result.stdout, "the reason is printed with the exit"
    assert "failed" in result.stdout
    assert not (tmp_path / "model").exists(), "a failed job must not leave a model"
