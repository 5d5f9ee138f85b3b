"""Run the real operator against the test cluster, as its least-privilege ServiceAccount.

The operator is `python -m kubetrain_operator`, started with a kubeconfig for
the `kubetrain-operator` ServiceAccount bound to manifests/rbac.yaml, so a
verb missing from the role fails the e2e tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kubetrain-system"
ACCOUNT = "kubetrain-operator"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningOperator:
    """A live operator process and where to find its output."""

    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    health_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def install_rbac(cluster: Cluster) -> Path:
    """Apply namespace, ServiceAccount and RBAC manifests; return the SA's kubeconfig."""
    for name in ("00-namespace.yaml", "serviceaccount.yaml", "rbac.yaml"):
        cluster.kubectl("apply", "-f", str(ROOT / "manifests" / name))
    return cluster.serviceaccount_kubeconfig(NAMESPACE, ACCOUNT)


def start_operator(kubeconfig: Path, log_path: Path, **env: str) -> RunningOperator:
    """Start the operator and wait until its health endpoint answers."""
    metrics_port, health_port = _free_port(), _free_port()
    environ = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBETRAIN_TRAINER_IMAGE": "kubetrain/trainer:test",
        "KUBETRAIN_RESYNC_SECONDS": "2",
        "KUBETRAIN_METRICS_PORT": str(metrics_port),
        "KUBETRAIN_HEALTH_ADDRESS": f"http://127.0.0.1:{health_port}/healthz",
        **env,
    }
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "kubetrain_operator"],
        env=environ,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    running = RunningOperator(process, log_path, metrics_port, health_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"operator exited with {process.returncode}:\n{running.log()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=1).close()
            return running
        except OSError:
            time.sleep(0.5)
    running.stop()
    raise RuntimeError(f"operator not healthy within 60 s:\n{running.log()}")


#: A nodeSelector no node matches: pods are created but never run.
NOWHERE = {"kubetrain.io/no-such-node": "x"}


def parked_job(name: str, namespace: str, workers: int = 2) -> dict[str, Any]:
    """The digits example whose pods stay Pending: the operator's bookkeeping
    is tested without TensorFlow processes."""
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["replicas"]["worker"].update(replicas=workers, nodeSelector=NOWHERE)
    return doc


def park(doc: dict[str, Any]) -> dict[str, Any]:
    """Make a job's workers unschedulable (in place); return it."""
    doc["spec"]["replicas"]["worker"]["nodeSelector"] = NOWHERE
    return doc


def pods_use_this_virtualenv() -> None:
    """The pods' "image" is this virtualenv: `python` in a pod must be its interpreter."""
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir):
        os.environ["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"


def operator_session(cluster: Cluster, tmp: Path) -> Iterator[RunningOperator]:
    """Generator for a pytest fixture: one operator for the whole module or session."""
    pods_use_this_virtualenv()
    kubeconfig = install_rbac(cluster)
    running = start_operator(kubeconfig, tmp / "operator.log")
    try:
        yield running
    finally:
        running.stop()
