"""Writing the final model so that a half-written one never looks complete.

The chief saves into a temporary sibling directory and renames it into place
only when everything is written; other workers save nothing (chief-only save
needs no collective under MultiWorkerMirroredStrategy).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from kubetrain_operator.api import TrainingJob

MODEL_FILE = "model.keras"
JOB_FILE = "job.json"


def export(model: Any, job: TrainingJob, model_dir: str, metrics: dict[str, float]) -> Path:
    """Save the model, the resolved job and final metrics into `model_dir` atomically."""
    target = Path(model_dir)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if job.spec.output.export_format == "savedmodel":
        model.export(str(staging / "saved_model"))
    else:
        model.save(staging / MODEL_FILE)
    (staging / JOB_FILE).write_text(json.dumps({"job": job.wire(), "metrics": metrics}, indent=2))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
