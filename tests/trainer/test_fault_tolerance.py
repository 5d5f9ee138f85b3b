"""A worker SIGKILLed mid-training: the group restarts and resumes, it does not start over."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .runner import digits_job, replica_pids, run_command

EPOCH_LINE = re.compile(r"^\[worker-0\] Epoch (\d+)/(\d+)")
RESUMED = re.compile(r"resuming from epoch (\d+), the newest finished by every worker")


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_sigkilled_worker_resumes_from_last_epoch(digits_dir: Path, tmp_path: Path) -> None:
    job = digits_job(
        digits_dir, tmp_path, runPolicy={"restartPolicy": "OnFailure", "backoffLimit": 2}
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        run_command(job, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    killed_at: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            match = EPOCH_LINE.match(line)
            # Epoch 3/N begins: epochs 1 and 2 are finished and backed up.
            if match and int(match.group(1)) >= 3 and not killed_at:
                pids = replica_pids(tmp_path, "worker", 1)
                assert len(pids) == 1, pids
                os.kill(pids[0], signal.SIGKILL)
                killed_at.append(int(match.group(1)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = proc.wait(timeout=540)
    reader.join(timeout=10)
    out = "\n".join(lines)
    assert killed_at, out[-4000:]
    assert code == 0, out[-4000:]
    assert "restarting all replicas (1/2)" in out, out[-4000:]
    restart = out.index("restarting all replicas (1/2)")
    resumed = [int(n) for n in RESUMED.findall(out[restart:])]
    # Both workers agree on the epoch, and it is at least the 2 finished before the kill.
    assert len(resumed) == 2 and resumed[0] == resumed[1] >= killed_at[0] - 1, out[restart:][:4000]
    first_after = next(
        int(m.group(1)) for line in out[restart:].splitlines() if (m := EPOCH_LINE.match(line))
    )
    assert first_after == resumed[0] + 1 >= 3, "epoch 1 was run again after the restart"
    saved = json.loads((tmp_path / "model" / "job.json").read_text())
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    print(
        f"killed at epoch {killed_at[0]}, resumed at {resumed[0]}, "
        f"val_accuracy {saved['metrics']['val_accuracy']:.4f}, {time.monotonic() - started:.0f} s"
    )
