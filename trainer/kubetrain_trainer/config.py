"""The trainer's view of its job: the spec, TF_CONFIG and this replica's role.

Everything comes from the environment the operator (or `kubetrain run`) sets,
so a pod and a local process run the very same program.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kubetrain_operator.api import ReplicaType, TrainingJob

# Exit codes: 1-127 are permanent and >=128 retryable under restartPolicy ExitCode.
EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_RETRYABLE = 138


class ConfigError(Exception):
    """The job cannot run as configured; retrying will not help."""


@dataclass(frozen=True)
class TrainerConfig:
    """Who this process is in the TF cluster and what it must do."""

    job: TrainingJob
    tf_config: dict[str, Any]
    task_type: ReplicaType
    task_index: int
    progress_port: int | None
    work_dir: Path
    cluster: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.job.metadata.name

    @property
    def num_workers(self) -> int:
        """Members of the synchronous worker group (chief + workers)."""
        return len(self.cluster.get("chief", [])) + len(self.cluster.get("worker", []))

    @property
    def is_reporter(self) -> bool:
        """The chief, or worker 0 when there is no chief: it saves and reports."""
        if self.cluster.get("chief"):
            return self.task_type == ReplicaType.CHIEF
        return self.task_type == ReplicaType.WORKER and self.task_index == 0

    @property
    def worker_id(self) -> str:
        return f"{self.task_type.value}-{self.task_index}"


def load(env: dict[str, str] | None = None) -> TrainerConfig:
    """Read the job and this replica's role from the environment.

    Raises:
        ConfigError: KUBETRAIN_JOB or TF_CONFIG is missing or invalid.
    """
    env = dict(os.environ if env is None else env)
    raw = env.get("KUBETRAIN_JOB")
    if not raw:
        raise ConfigError("KUBETRAIN_JOB is not set: the job spec must be passed as JSON")
    try:
        job = TrainingJob.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as err:
        raise ConfigError(f"KUBETRAIN_JOB is not a valid TrainingJob: {err}") from err
    try:
        tf_config = json.loads(env.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as err:
        raise ConfigError(f"TF_CONFIG is not JSON: {err}") from err
    task = tf_config.get("task", {"type": "worker", "index": 0})
    try:
        task_type = ReplicaType(task.get("type", "worker"))
    except ValueError as err:
        raise ConfigError(
            f"TF_CONFIG.task.type: unknown replica type {task.get('type')!r}"
        ) from err
    port = env.get("KUBETRAIN_PROGRESS_PORT")
    work_dir = Path(env.get("KUBETRAIN_WORK_DIR") or "/tmp/kubetrain") / job.metadata.name
    return TrainerConfig(
        job=job,
        tf_config=tf_config,
        task_type=task_type,
        task_index=int(task.get("index", 0)),
        progress_port=int(port) if port else None,
        work_dir=work_dir,
        cluster=tf_config.get("cluster", {}),
    )
