"""Helpers for tests that drive `kubetrain run` on the digits job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBETRAIN = [sys.executable, "-c", "from kubetrain_operator.cli import main; main()"]


def digits_job(digits: Path, tmp_path: Path, name: str = "job.yaml", **spec: Any) -> Path:
    """examples/digits-local.yaml on `digits`, with top-level spec fields merged in."""
    train, validation = str(digits / "train"), str(digits / "validation")
    return job_file(tmp_path, train, validation, str(tmp_path / "model"), name, **spec)


def job_file(
    tmp_path: Path, train: str, validation: str, model_dir: str, name: str = "job.yaml", **spec: Any
) -> Path:
    """examples/digits-local.yaml reading `train`/`validation` (paths or URIs),
    writing its model to `model_dir`, with top-level spec fields merged in."""
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["spec"]["data"].update(train=train, validation=validation)
    doc["spec"]["output"]["modelDir"] = model_dir
    for key, value in spec.items():
        current = doc["spec"].get(key)
        doc["spec"][key] = {**current, **value} if isinstance(current, dict) else value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def run_command(job: Path, tmp_path: Path) -> list[str]:
    return [*KUBETRAIN, "run", str(job), "--work-dir", str(tmp_path / "work")]


def run(
    job: Path, tmp_path: Path, timeout: int = 540, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubetrain run job` to the end, output captured; `env` replaces this process's."""
    return subprocess.run(
        run_command(job, tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )


def replica_pids(work_parent: Path, rtype: str, index: int) -> list[int]:
    """Trainer processes of one replica, found by the environment the runner gave them."""
    wanted = {
        f"KUBETRAIN_WORK_DIR={work_parent}".encode(),
        f"KUBETRAIN_REPLICA_TYPE={rtype}".encode(),
        f"KUBETRAIN_REPLICA_INDEX={index}".encode(),
    }
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ:
            pids.append(int(entry.name))
    return pids


def predict_job(train_job: Path, tmp_path: Path, input_dir: Path, id_key: str | None) -> Path:
    """A task: predict job over `input_dir` with the model `train_job` exported."""
    doc = yaml.safe_load(train_job.read_text())
    doc["metadata"]["name"] = "digits-predict"
    spec = doc["spec"]
    spec["task"] = "predict"
    spec["replicas"] = {"worker": {"replicas": 1}}
    del spec["data"]  # the features come from the model's job.json
    spec["predict"] = {
        "model": spec["output"]["modelDir"],
        "input": str(input_dir),
        "output": str(tmp_path / "predictions" / "out.parquet"),
        "batchSize": 100,
    }
    if id_key:
        spec["predict"]["idKey"] = id_key
    path = tmp_path / "predict.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def prediction_accuracy(tmp_path: Path) -> tuple[int, float]:
    """(rows, accuracy) of the predictions written by `predict_job` with idKey label."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "predictions" / "out.parquet")
    labels = table.column("label").to_numpy()
    return table.num_rows, float(np.mean(labels == table.column("prediction").to_numpy()))
