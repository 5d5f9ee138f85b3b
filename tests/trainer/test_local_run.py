"""`kubetrain run`: real multi-process MultiWorkerMirroredStrategy training on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBETRAIN = [sys.executable, "-c", "from kubetrain_operator.cli import main; main()"]


def _job(digits: Path, tmp_path: Path, **overrides: Any) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["spec"]["data"]["train"] = str(digits / "train")
    doc["spec"]["data"]["validation"] = str(digits / "validation")
    doc["spec"]["output"]["modelDir"] = str(tmp_path / "model")
    for key, value in overrides.items():
        doc["spec"][key] = {**doc["spec"].get(key, {}), **value}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(job: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KUBETRAIN, "run", str(job), "--work-dir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_two_workers_train_digits_to_90_percent(digits_dir: Path, tmp_path: Path) -> None:
    result = _run(_job(digits_dir, tmp_path), tmp_path)
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
    job = _job(
        digits_dir,
        tmp_path,
        data={"validation": str(tmp_path / "missing" / "*.tfrecord")},
        runPolicy={"restartPolicy": "ExitCode"},
    )
    result = _run(job, tmp_path)
    assert result.returncode == 2, result.stdout[-4000:]
    assert "no input files match" in result.stdout
    assert "exited with code 2: " in result.stdout, "the reason is printed with the exit"
    assert "failed" in result.stdout
    assert not (tmp_path / "model").exists(), "a failed job must not leave a model"
