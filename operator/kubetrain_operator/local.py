"""Local backend: the planned replicas as local processes, no cluster needed.

Each replica gets the same TF_CONFIG a pod would, with addresses on
127.0.0.1 and free ports. Logs are streamed with a replica prefix, the
reporter's progress endpoint drives a progress bar, and when one replica
fails every replica stops (TF's collectives cannot go on without it). A
retryable failure restarts the whole group, within runPolicy.backoffLimit and
after the same restart back-off as on a cluster, and BackupAndRestore resumes
from the last finished epoch. spec.data.hdfs names cluster objects (ConfigMaps,
a keytab Secret) that do not exist here: replicas inherit this process's
HADOOP_CONF_DIR, KRB5_CONFIG and Kerberos login (KUBETRAIN_PRINCIPAL and
KUBETRAIN_KEYTAB, or a kinit ticket cache) instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from kubetrain_operator import plan, policy
from kubetrain_operator.api import TrainingJob

STOP_GRACE_SECONDS = 10
# After the reporter succeeds, other replicas get this long to finish on their own.
PEER_FINISH_SECONDS = 30
COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red"]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def termination_log(work_dir: Path, replica_name: str) -> Path:
    """Where a local replica leaves why it failed (a pod's /dev/termination-log)."""
    return work_dir / f"{replica_name}.termination-log"


@dataclass
class Process:
    """One running replica."""

    replica: plan.Replica
    popen: subprocess.Popen[str]
    reader: threading.Thread


@dataclass(frozen=True)
class Outcome:
    """How one attempt of the group ended."""

    exit_code: int
    replica: str


def _stream(prefix: str, color: str, pipe: IO[str], console: Console) -> None:
    for line in pipe:
        console.print(Text.assemble((prefix, color), " ", line.rstrip()), soft_wrap=True)


def _start(
    job: TrainingJob, work_dir: Path, python: str, console: Console
) -> tuple[list[Process], int]:
    members = plan.replicas(job)
    ports = {r.name: free_port() for r in members}
    progress_port = free_port()
    base_env = {**os.environ, "KUBETRAIN_WORK_DIR": str(work_dir.parent)}
    processes = []
    for i, replica in enumerate(members):
        env = {
            **base_env,
            **plan.trainer_env(job, replica, lambda r: f"127.0.0.1:{ports[r.name]}", progress_port),
            "KUBETRAIN_TERMINATION_LOG": str(termination_log(work_dir, replica.name)),
        }
        termination_log(work_dir, replica.name).unlink(missing_ok=True)
        popen = subprocess.Popen(
            [python, "-m", "kubetrain_trainer"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        prefix = f"[{replica.type.value}-{replica.index}]"
        reader = threading.Thread(
            target=_stream,
            args=(prefix, COLORS[i % len(COLORS)], popen.stdout, console),
            daemon=True,
        )
        reader.start()
        processes.append(Process(replica, popen, reader))
    return processes, progress_port


def _stop(processes: list[Process]) -> None:
    """SIGTERM every live replica's process group, then SIGKILL stragglers."""
    for proc in processes:
        if proc.popen.poll() is None:
            os.killpg(proc.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in processes:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
    for proc in processes:
        proc.reader.join(timeout=5)


def _fetch_progress(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=1) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


class _Bar:
    """A rich progress bar per epoch, fed from the reporter's /progress."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.epoch = -1

    def update(self, snap: dict[str, Any]) -> None:
        steps = snap.get("stepsPerEpoch") or 1
        epochs = snap.get("epochs") or 1
        step_in_epoch = snap.get("step", 0) - min(snap.get("epoch", 0), epochs - 1) * steps
        epoch = min(snap.get("epoch", 0) + 1, epochs)
        stats = " ".join(
            f"{k}={v:.4g}"
            for k, v in {"loss": snap.get("loss"), **snap.get("metrics", {})}.items()
            if isinstance(v, int | float)
        )
        if epoch != self.epoch:
            if self.task is not None:
                self.progress.update(self.task, completed=steps)
            self.epoch = epoch
            self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=steps, stats=stats)
        if self.task is not None:
            self.progress.update(self.task, completed=min(step_in_epoch, steps), stats=stats)


def _wait(
    job: TrainingJob, processes: list[Process], progress_port: int, bar: _Bar | None
) -> Outcome:
    """Poll until the group's fate is known; the bar is None when not on a terminal."""
    reporter = plan.reporter(job).name
    reporter_done_at: float | None = None
    while True:
        snap = _fetch_progress(progress_port) if bar is not None else None
        if bar is not None and snap and snap.get("stepsPerEpoch"):
            bar.update(snap)
        for proc in processes:
            code = proc.popen.poll()
            if code is not None and code != 0:
                return Outcome(code, proc.replica.name)
        codes = {p.replica.name: p.popen.poll() for p in processes}
        if all(code == 0 for code in codes.values()):
            return Outcome(0, reporter)
        if job.spec.success_policy == "chief" and codes.get(reporter) == 0:
            reporter_done_at = reporter_done_at or time.monotonic()
            if time.monotonic() - reporter_done_at > PEER_FINISH_SECONDS:
                return Outcome(0, reporter)
        time.sleep(0.5)


def _read_reason(work_dir: Path, replica_name: str) -> str:
    try:
        return escape(termination_log(work_dir, replica_name).read_text().strip())
    except OSError:
        return ""


def run(
    job: TrainingJob,
    work_dir: Path,
    console: Console | None = None,
    python: str = sys.executable,
) -> int:
    """Run the job locally until it succeeds or fails; return its exit code."""
    console = console or Console()
    work_dir.mkdir(parents=True, exist_ok=True)
    restarts = 0
    while True:
        console.print(
            f"[bold]kubetrain[/]: starting {len(plan.replicas(job))} replicas of "
            f"{job.metadata.name} (attempt {restarts + 1})"
        )
        processes, progress_port = _start(job, work_dir, python, console)
        bar = _Bar(console) if console.is_terminal else None
        try:
            if bar is None:
                outcome = _wait(job, processes, progress_port, None)
            else:
                with bar.progress:
                    outcome = _wait(job, processes, progress_port, bar)
        finally:
            _stop(processes)
        if outcome.exit_code == 0:
            shutil.rmtree(work_dir / "backup", ignore_errors=True)
            console.print(f"[bold green]kubetrain[/]: {job.metadata.name} succeeded")
            return 0
        reason = _read_reason(work_dir, outcome.replica)
        console.print(
            f"[bold red]kubetrain[/]: {outcome.replica} exited with code {outcome.exit_code}"
            + (f": {reason}" if reason else ""),
            highlight=False,
        )
        if not policy.should_restart(job.spec.run_policy, outcome.exit_code, restarts):
            console.print(f"[bold red]kubetrain[/]: {job.metadata.name} failed")
            return outcome.exit_code if 0 < outcome.exit_code < 256 else 1
        restarts += 1
        delay = policy.restart_delay(job.spec.run_policy, restarts).total_seconds()
        console.print(
            f"[bold yellow]kubetrain[/]: restarting all replicas "
            f"({restarts}/{job.spec.run_policy.backoff_limit}) after a {delay:.0f}s back-off"
        )
        time.sleep(delay)
