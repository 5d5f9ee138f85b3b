"""`kubetrain run`: two real workers train on TFRecords in HDFS and upload the model there."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer.data import fs
from tests.trainer import runner


def _run(
    tmp_path: Path, train: str, validation: str, model_dir: str, **spec: Any
) -> subprocess.CompletedProcess[str]:
    return runner.run(runner.job_file(tmp_path, train, validation, model_dir, **spec), tmp_path)


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_two_workers_train_from_hdfs_and_upload_the_model(
    hdfs_digits: str, hdfs_dir: str, tmp_path: Path
) -> None:
    model_dir = f"{hdfs_dir}/models/digits"
    result = _run(tmp_path, f"{hdfs_digits}/train", f"{hdfs_digits}/validation", model_dir)

    assert result.returncode == 0, result.stdout[-4000:]
    assert "strategy multi_worker_mirrored: 2 workers in TF_CONFIG" in result.stdout
    remote = fs.filesystem(model_dir)
    saved = json.loads(b"".join(remote.stream(f"{model_dir}/job.json")))
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    info = remote.info(f"{model_dir}/model.keras")
    assert info is not None and info.size > 0
    # Only the final model: no temporary upload left beside it.
    assert [e.path for e in remote.listdir(f"{hdfs_dir}/models")] == [model_dir]


@pytest.mark.trainer
@pytest.mark.timeout(300)
def test_an_unreachable_namenode_fails_the_job_fast_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"hdfs://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    result = _run(
        tmp_path,
        f"{dead}/digits/train",
        f"{dead}/digits/validation",
        str(tmp_path / "m"),
        # An outage is retryable (exit 138); backoffLimit 0 makes this one attempt.
        runPolicy={"restartPolicy": "ExitCode", "backoffLimit": 0},
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 138, result.stdout[-4000:]
    assert "retryable failure" in result.stdout
    assert f"{dead}/digits/train: cannot reach the HDFS NameNode of {dead}" in result.stdout
    assert elapsed < 30, f"took {elapsed:.0f}s"
    assert not (tmp_path / "m").exists()
