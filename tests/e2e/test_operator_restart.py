"""The operator killed (SIGKILL) in the middle of creating a job's pods, or
while a job waits out a restart back-off.

Names are deterministic and a 409 means done, so the restarted operator
creates exactly what is missing: no duplicates, no orphans. The back-off
lives in the job's status, so a new operator neither forgets nor resets it.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import (
    RunningOperator,
    install_rbac,
    park,
    pods_use_this_virtualenv,
    start_operator,
)
from tests.harness.cluster import Cluster
from tests.harness.kubelet import TestKubelet

pytestmark = pytest.mark.e2e


@pytest.fixture
def second_operator(cluster: Cluster, tmp_path: Path) -> Iterator[Any]:
    """A factory for operators this test may kill; all are stopped at the end."""
    kubeconfig = install_rbac(cluster)
    started: list[RunningOperator] = []

    def start(**env: str) -> RunningOperator:
        running = start_operator(kubeconfig, tmp_path / f"operator-{len(started)}.log", **env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.mark.timeout(240)
def test_operator_killed_mid_creation_creates_no_duplicates(
    cluster: Cluster,
    second_operator: Any,
    digits_host_dir: Path,
    out_dir: Path,
) -> None:
    ns = base._namespace(cluster, "e2e-killed")
    doc = base._job("many", ns, digits_host_dir, out_dir)
    doc["spec"]["replicas"]["worker"]["replicas"] = 24
    park(doc)
    first = second_operator()
    base._apply(cluster, doc)

    def count(kind: str) -> int:
        return len(cluster.kubectl("get", kind, "-n", ns, "-o", "name").stdout.split())

    base._wait("creation under way", lambda: count("pods") + count("svc") > 0, 60, first.log)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    second = second_operator()
    base._wait("24 pods", lambda: count("pods") == 24, 120, second.log)
    assert count("svc") == 24
    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    names = sorted(p["metadata"]["name"] for p in pods)
    assert names == sorted(f"many-worker-{i}" for i in range(24))
    assert all(len(p["metadata"]["ownerReferences"]) == 1 for p in pods)


@pytest.mark.timeout(360)
def test_restart_back_off_survives_an_operator_restart(
    cluster: Cluster,
    kubelet: TestKubelet,
    second_operator: Any,
    digits_host_dir: Path,
    out_dir: Path,
) -> None:
    pods_use_this_virtualenv()
    ns = base._namespace(cluster, "e2e-killed-backoff")
    doc = lifecycle._flaky_job("patient", ns, digits_host_dir, out_dir, always=True)
    doc["spec"]["runPolicy"] = {
        "backoffLimit": 1,
        "restartBackoffSeconds": 20,
        "maxRestartBackoffSeconds": 20,
    }
    first = second_operator()
    base._apply(cluster, doc)
    status = base._wait(
        "the first restart",
        lambda: (s := lifecycle._status(cluster, ns, "patient")).get("restartCount") == 1 and s,
        240,
        first.log,
    )
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    restarted_at = datetime.fromisoformat(status["lastRestartTime"])
    second = second_operator()

    def replacement() -> datetime | None:
        pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)
        times = [
            datetime.fromisoformat(p["metadata"]["creationTimestamp"])
            for p in pods["items"]
            if p["metadata"]["name"] == "patient-worker-1"
        ]
        # The crashed pod was created seconds before the restart (TF imports first).
        return next((t for t in times if t >= restarted_at), None)

    created = base._wait("the replacement pods", replacement, 120, second.log)
    waited = (created - restarted_at).total_seconds()
    assert 20 <= waited <= 35, (waited, status)
    done = lifecycle._wait_phase(cluster, ns, "patient", ("Succeeded", "Failed"), 180, second.log)
    assert lifecycle._condition(done, "Failed")["reason"] == "BackoffLimitExceeded", done
    assert done["restartCount"] == 1 and done["lastRestartTime"] == status["lastRestartTime"]
    print(f"\nback-off 20 s across an operator SIGKILL: new pods after {waited:.0f} s")


def _leader_env() -> dict[str, str]:
    return {"KUBETRAIN_LEADER_ELECTION_NAMESPACE": "kubetrain-system"}


@pytest.mark.timeout(300)
def test_two_operators_one_leader_and_failover(
    cluster: Cluster, second_operator: Any, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "e2e-leader")
    first = second_operator(**_leader_env())
    base._wait("first leads", lambda: "leading as" in first.log(), 60, first.log)
    second = second_operator(**_leader_env())
    base._wait(
        "second waits", lambda: "waiting for the leader lease" in second.log(), 60, second.log
    )

    doc = base._job("led", ns, digits_host_dir, out_dir)
    park(doc)
    base._apply(cluster, doc)

    def pods() -> int:
        return len(cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split())

    base._wait("pods of the first job", lambda: pods() == 2, 60, first.log)
    assert "leading as" not in second.log() and "created" not in second.log()

    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    base._wait("second takes over", lambda: "leading as" in second.log(), 60, second.log)
    doc["metadata"]["name"] = "after"
    base._apply(cluster, doc)
    base._wait("the new leader acts", lambda: pods() == 4, 60, second.log)
