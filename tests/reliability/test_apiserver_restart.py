"""Chaos: the kube-apiserver restarts while a job trains.

The operator's watches break and reconnect; the job's status must stay true
through the outage and the job must still finish: real training in two pods
on the test kubelet, the apiserver down for several seconds mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(480)
def test_job_survives_an_apiserver_restart(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "chaos-apiserver")
    doc = base._job("steady", ns, digits_host_dir, out_dir)
    doc["spec"]["training"]["epochs"] = 10
    base._apply(cluster, doc)

    def status() -> dict[str, Any]:
        return base._get(cluster, ns, "steady").get("status") or {}

    base._wait("Running", lambda: status().get("phase") == "Running", 180, operator.log)
    cluster.restart("kube-apiserver", down_seconds=5)
    after = status()
    assert after["phase"] in ("Running", "Succeeded"), after
    final = base._wait(
        "finished",
        lambda: (s := status()).get("phase") in ("Succeeded", "Failed") and s,
        300,
        operator.log,
    )
    assert final["phase"] == "Succeeded", operator.log()[-3000:]
    assert final["restartCount"] == 0
    assert operator.process.poll() is None, "the operator died with the apiserver"
