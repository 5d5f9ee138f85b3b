"""One trainer replica as its pod runs it: `python -m kubetrain_trainer`, job in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIGITS = {
    "format": "tfrecord",
    "features": [{"name": "pixels", "shape": [8, 8, 1], "dtype": "float32"}],
    "label": {"name": "label", "dtype": "int64"},
}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    #: What the pod would leave in its termination message.
    message: str


def run_trainer(
    spec: dict[str, Any],
    env: dict[str, str],
    tmp_path: Path,
    uid: str = "uid-1",
    timeout: float = 400,
) -> Run:
    """Run one single-worker replica of a job with `spec` to its end.

    HADOOP_CONF_DIR and HADOOP_HOME come only from `env`, so the caller decides the config.
    """
    job = {
        "metadata": {"name": "replica-test", "uid": uid},
        "spec": {"replicas": {"worker": {"replicas": 1}}, **spec},
    }
    termination = tmp_path / "termination-log"
    termination.unlink(missing_ok=True)
    inherited = {k: v for k, v in os.environ.items() if k not in ("HADOOP_CONF_DIR", "HADOOP_HOME")}
    full = {
        **inherited,
        "KUBETRAIN_JOB": json.dumps(job),
        "TF_CONFIG": json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}),
        "KUBETRAIN_WORK_DIR": str(tmp_path / "work"),
        "KUBETRAIN_TERMINATION_LOG": str(termination),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kubetrain_trainer"],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    message = termination.read_text() if termination.exists() else ""
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started, message)
