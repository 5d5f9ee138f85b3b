"""The per-job NetworkPolicy that plan.py plans is one the real apiserver accepts.

The unit test checks who it lets in; this one checks the object itself: the
apiserver validates it, it selects exactly the job's pods, and its owner
reference makes deleting the job garbage-collect it. The operator does not
create it yet, so the test creates it as the admin. The test kubelet has no
network plugin, so enforcement is not tested here.
"""

from __future__ import annotations

import json

import pytest
import yaml

from kubetrain_operator import plan
from kubetrain_operator.api import TrainingJob
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import parked_job
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(180)
def test_the_planned_network_policy_is_valid_and_goes_with_its_job(cluster: Cluster) -> None:
    ns = base._namespace(cluster, "rel-netpol")
    base._apply(cluster, parked_job("isolated", ns))
    job = TrainingJob.model_validate(base._get(cluster, ns, "isolated"))
    policy = plan.network_policy(job, plan.Settings())

    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(policy))
    stored = json.loads(
        cluster.kubectl("get", "networkpolicy", "isolated", "-n", ns, "-o", "json").stdout
    )
    assert stored["spec"]["podSelector"] == {"matchLabels": {plan.LABEL_JOB: "isolated"}}
    assert stored["spec"]["ingress"] == policy["spec"]["ingress"]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == job.metadata.uid

    cluster.kubectl("delete", "trainingjob", "isolated", "-n", ns, "--wait=true")
    base._wait(
        "the policy garbage-collected with its job",
        lambda: not cluster.kubectl("get", "networkpolicy", "-n", ns, "-o", "name").stdout.strip(),
        90,
        lambda: "",
    )
