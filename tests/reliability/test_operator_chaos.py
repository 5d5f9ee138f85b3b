"""Chaos: the operator SIGKILLed at random moments while 50 jobs are being created.

Every job must converge: exactly its planned pods and services, each owned by
its job, no duplicates, no orphans, a truthful phase. Pods are left
unschedulable on purpose (a nodeSelector nobody matches) so that 100 replicas
cost no training processes on a 2-core machine: what is under test is the
operator's bookkeeping, not TensorFlow.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.operator_fixture import RunningOperator, install_rbac, parked_job, start_operator
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "chaos-operator"
JOBS = 50
KILLS = 4


def _items(cluster: Cluster, kind: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", NAMESPACE, "-o", "json")
    return json.loads(out.stdout)["items"]


@pytest.fixture
def operators(cluster: Cluster, tmp_path: Path) -> Iterator[list[RunningOperator]]:
    started: list[RunningOperator] = []
    yield started
    for running in started:
        running.stop()


@pytest.mark.timeout(600)
def test_sigkilled_operator_converges_without_duplicates_or_orphans(
    cluster: Cluster, operators: list[RunningOperator], tmp_path: Path
) -> None:
    rng = random.Random(20261125)
    kubeconfig = install_rbac(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    names = [f"chaos-{i:02d}" for i in range(JOBS)]
    manifest = "---\n".join(yaml.safe_dump(parked_job(n, NAMESPACE)) for n in names)
    operators.append(start_operator(kubeconfig, tmp_path / "operator-0.log"))
    cluster.kubectl("apply", "-f", "-", input=manifest)
    kills = []
    for k in range(KILLS):
        time.sleep(rng.uniform(0.2, 2.5))
        victim = operators[-1]
        kills.append(len(_items(cluster, "pods")))
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        operators.append(start_operator(kubeconfig, tmp_path / f"operator-{k + 1}.log"))

    def settled(job: dict[str, Any]) -> bool:
        status = job.get("status") or {}
        active = (status.get("replicaStatuses") or {}).get("worker", {}).get("active")
        return status.get("phase") == "Created" and active == 2

    # Converged means every status is true too, not only every pod created:
    # the counts follow the pods within a reconcile or two.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        jobs = _items(cluster, "trainingjobs")
        if len(_items(cluster, "pods")) == 2 * JOBS and all(settled(j) for j in jobs):
            break
        time.sleep(2)
    pods, services, jobs = (_items(cluster, k) for k in ("pods", "services", "trainingjobs"))
    uids = {j["metadata"]["uid"]: j["metadata"]["name"] for j in jobs}
    expected = sorted(f"{n}-worker-{i}" for n in names for i in range(2))
    assert sorted(p["metadata"]["name"] for p in pods) == expected, f"pods seen at kills: {kills}"
    assert sorted(s["metadata"]["name"] for s in services) == expected
    for obj in pods + services:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert uids.get(owner["uid"]) == obj["metadata"]["labels"]["kubetrain.io/job-name"]
    for job in jobs:
        status = job["status"]
        assert status["phase"] == "Created", (job["metadata"]["name"], status)
        assert status["replicaStatuses"]["worker"]["active"] == 2
        assert status["restartCount"] == 0
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
