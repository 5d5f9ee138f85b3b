"""The evaluator replica evaluates the chief's checkpoints until the final epoch."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from .runner import digits_job, run

REPLICAS = {"chief": {"replicas": 1}, "worker": {"replicas": 1}, "evaluator": {"replicas": 1}}
EPOCHS = 8
# tf.summary needs the tensorboard package; without it the job must refuse the option.
TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_chief_worker_evaluator(digits_dir: Path, tmp_path: Path) -> None:
    job = digits_job(
        digits_dir,
        tmp_path,
        replicas=REPLICAS,
        training={"epochs": EPOCHS},
        output={"tensorboard": TENSORBOARD},
    )
    started = time.monotonic()
    result = run(job, tmp_path)
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert "strategy multi_worker_mirrored: 2 workers in TF_CONFIG" in out
    events = [
        json.loads(line.split(" ", 1)[1])
        for line in out.splitlines()
        if line.startswith("[evaluator-0] {")
    ]
    evaluated = [e["epoch"] for e in events if e.get("event") == "evaluated"]
    assert evaluated and evaluated == sorted(evaluated), out[-4000:]
    assert evaluated[-1] == EPOCHS, evaluated
    assert events[-1]["metrics"]["accuracy"] >= 0.9, events[-1]
    if TENSORBOARD:
        assert list((tmp_path / "model-logs" / "eval").glob("events.out.tfevents.*"))
        assert list((tmp_path / "model-logs" / "train").glob("events.out.tfevents.*"))
    print(f"evaluated epochs {evaluated}, final {events[-1]['metrics']}, {elapsed:.0f} s")
