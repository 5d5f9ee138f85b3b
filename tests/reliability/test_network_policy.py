"""The operator fences every job with its own NetworkPolicy, on the real apiserver.

The unit test (tests/unit/test_plan.py) checks who the policy lets in; this
one checks that the operator, as its least-privilege ServiceAccount, creates
exactly the planned policy before the job runs, that the apiserver accepts
it, and that deleting the job garbage-collects it. The test kubelet has no
network plugin, so enforcement itself is not tested here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetrain_operator import plan
from kubetrain_operator.api import TrainingJob
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator, parked_job
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e


def _policy(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", "networkpolicy", name, "-n", ns, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _pods(cluster: Cluster, ns: str) -> int:
    selector = f"{plan.LABEL_JOB}=isolated"
    return len(
        cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "name").stdout.split()
    )


@pytest.mark.timeout(180)
def test_the_operator_fences_each_job_and_the_fence_goes_with_it(
    cluster: Cluster, operator: RunningOperator
) -> None:
    ns = base._namespace(cluster, "rel-netpol")
    base._apply(cluster, parked_job("isolated", ns))
    stored = base._wait(
        "the operator's NetworkPolicy for the job",
        lambda: _policy(cluster, ns, "isolated"),
        60,
        operator.log,
    )
    job = TrainingJob.model_validate(base._get(cluster, ns, "isolated"))
    planned = plan.network_policy(job, plan.Settings())
    assert stored["spec"]["podSelector"] == {"matchLabels": {plan.LABEL_JOB: "isolated"}}
    assert stored["spec"]["ingress"] == planned["spec"]["ingress"]
    assert stored["spec"]["policyTypes"] == ["Ingress"]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == job.metadata.uid
    base._wait(
        "the job's pods, created after their fence",
        lambda: _pods(cluster, ns) == 2,
        60,
        operator.log,
    )

    cluster.kubectl("delete", "trainingjob", "isolated", "-n", ns, "--wait=true")
    base._wait(
        "the policy garbage-collected with its job",
        lambda: _policy(cluster, ns, "isolated") is None,
        90,
        operator.log,
    )
