"""Job lifecycle on the real apiserver: restarts, backoffLimit, deadline, suspend,
and an operator killed mid-creation.

Failures are real: a user entry point kills its worker process with a chosen
exit code, the test kubelet reports it, the operator decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator, park
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e
MODELS = Path(__file__).resolve().parent / "models"

# Shared fixtures of the operator tests.
operator = base.operator
host_dir = base.host_dir
digits_host_dir = base.digits_host_dir
out_dir = base.out_dir


def _flaky_job(name: str, ns: str, data: Path, out: Path, **model_kwargs: Any) -> dict[str, Any]:
    doc = base._job(name, ns, data, out)
    doc["spec"]["training"]["epochs"] = 2
    doc["spec"]["model"] = {
        "entrypoint": "flaky:build",
        "kwargs": {"marker": "/out/crashed", **model_kwargs},
    }
    doc["spec"]["replicas"]["worker"]["env"] = [{"name": "PYTHONPATH", "value": str(MODELS)}]
    return doc


def _status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return base._get(cluster, ns, name).get("status") or {}


def _wait_phase(
    cluster: Cluster, ns: str, name: str, phases: tuple[str, ...], timeout: float, diag: Any
) -> dict[str, Any]:
    return base._wait(
        f"{name} in {phases}",
        lambda: (s := _status(cluster, ns, name)).get("phase") in phases and s,
        timeout,
        diag,
    )


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def _reasons(cluster: Cluster, ns: str) -> set[str]:
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    return {e["reason"] for e in events["items"]}


@pytest.mark.timeout(420)
def test_worker_crash_restarts_the_group_once_and_succeeds(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "e2e-restart")
    base._apply(cluster, _flaky_job("flaky", ns, digits_host_dir, out_dir))
    status = _wait_phase(cluster, ns, "flaky", ("Succeeded", "Failed"), 360, operator.log)
    assert status["phase"] == "Succeeded", status
    assert status["restartCount"] == 1
    assert (out_dir / "crashed").read_text() == "crashed\n"
    assert {"TrainingJobRestarting", "TrainingJobSucceeded"} <= _reasons(cluster, ns)
    restarting = _condition(status, "Restarting")
    assert restarting["status"] == "False"


@pytest.mark.timeout(300)
def test_backoff_limit_exhausted_fails(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "e2e-backoff")
    doc = _flaky_job("crashloop", ns, digits_host_dir, out_dir, always=True)
    doc["spec"]["runPolicy"] = {"backoffLimit": 1}
    base._apply(cluster, doc)
    status = _wait_phase(cluster, ns, "crashloop", ("Succeeded", "Failed"), 240, operator.log)
    failed = _condition(status, "Failed")
    assert status["phase"] == "Failed" and failed["reason"] == "BackoffLimitExceeded"
    assert "crashloop-worker-1 failed with exit code 138" in failed["message"]
    assert status["restartCount"] == 1
    assert (out_dir / "crashed").read_text().count("crashed") == 2


@pytest.mark.timeout(240)
def test_active_deadline_ends_a_job_that_would_wait_forever(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "e2e-deadline")
    doc = base._job("stuck", ns, digits_host_dir, out_dir, runPolicy={"activeDeadlineSeconds": 8})
    park(doc)
    base._apply(cluster, doc)
    status = _wait_phase(cluster, ns, "stuck", ("Failed",), 120, operator.log)
    assert _condition(status, "Failed")["reason"] == "DeadlineExceeded"
    base._wait(
        "pods deleted",
        lambda: not cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.strip(),
        60,
        operator.log,
    )


@pytest.mark.timeout(240)
def test_suspend_deletes_pods_and_resume_recreates_them(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "e2e-suspend")
    doc = base._job("held", ns, digits_host_dir, out_dir)
    park(doc)
    base._apply(cluster, doc)

    def pods() -> list[str]:
        return cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()

    base._wait("2 pods", lambda: len(pods()) == 2, 60, operator.log)
    cluster.kubectl(
        "patch",
        "tj",
        "held",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"runPolicy": {"suspend": true}}}',
    )
    status = _wait_phase(cluster, ns, "held", ("Suspended",), 60, operator.log)
    assert _condition(status, "Suspended")["status"] == "True"
    base._wait("pods deleted", lambda: not pods(), 60, operator.log)
    cluster.kubectl(
        "patch",
        "tj",
        "held",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"runPolicy": {"suspend": false}}}',
    )
    base._wait("pods recreated", lambda: len(pods()) == 2, 60, operator.log)
    assert _condition(_status(cluster, ns, "held"), "Suspended")["status"] == "False"
