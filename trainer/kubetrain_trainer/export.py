"""Writing the final model so that a half-written one never looks complete.

The chief saves into a temporary sibling directory and renames it into place
only when everything is written; other workers save nothing (chief-only save
needs no collective under MultiWorkerMirroredStrategy). For an hdfs:// or
viewfs:// modelDir the model is saved locally first (Keras and TensorFlow
cannot write HDFS), uploaded into a hidden sibling (`.<name>.tmp-<pid>`, which
listings skip), and renamed into place: HDFS renames are atomic, so readers see
the old model, no model, or the whole new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kubetrain_operator.api import TrainingJob
from kubetrain_trainer import outages
from kubetrain_trainer.data import fs

MODEL_FILE = "model.keras"
JOB_FILE = "job.json"


def export(model: Any, job: TrainingJob, model_dir: str, metrics: dict[str, float]) -> str:
    """Save the model, the resolved job and final metrics into `model_dir` atomically.

    Returns the final location (a local path or the URI).

    Raises:
        HdfsUnavailableError: the model dir is on HDFS and it went away mid-upload.
    """
    if fs.is_remote(model_dir):
        with tempfile.TemporaryDirectory(prefix="kubetrain-export-") as tmp:
            local = Path(tmp) / "model"
            _save(model, job, local, metrics)
            with outages.retryable(model_dir, "model upload"):
                _publish(str(local), model_dir)
        return model_dir
    target = Path(model_dir)
    staging = target.with_name(_staging_name(target.name))
    shutil.rmtree(staging, ignore_errors=True)
    _save(model, job, staging, metrics)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return str(target)


def _staging_name(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}"


def _save(model: Any, job: TrainingJob, out: Path, metrics: dict[str, float]) -> None:
    out.mkdir(parents=True)
    if job.spec.output.export_format == "savedmodel":
        model.export(str(out / "saved_model"))
    else:
        model.save(out / MODEL_FILE)
    (out / JOB_FILE).write_text(json.dumps({"job": job.wire(), "metrics": metrics}, indent=2))


def _publish(local: str, uri: str) -> None:
    """Upload `local` to a hidden sibling of `uri`, then swap it in by rename."""
    remote = fs.filesystem(uri)
    parent, name = fs.split(uri)
    staging = fs.join(parent, _staging_name(name))
    remote.delete(staging)
    try:
        fs.copy_tree(local, staging)
        remote.delete(uri)
        remote.rename(staging, uri)
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the original error matters more
            remote.delete(staging)
        raise
