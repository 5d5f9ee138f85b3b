"""Kerberos keytabs and HDFS delegation tokens never reach a log, an Event or a status.

A fake keytab goes in through spec.data.hdfs.kerberosSecret (mounted by the
operator) and a fake delegation token through a secretKeyRef env var, the
way users pass both. One job trains to success, one fails in user code with
a traceback (whose log tail can become the termination message). Then every
pod log, the operator's log, the jobs' status and Events are searched for
the secrets, plain and base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster
from tests.harness.kubelet import TestKubelet

pytestmark = pytest.mark.e2e


def _secret(cluster: Cluster, ns: str, name: str, key: str, value: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {key: value},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def _job(name: str, ns: str, data: Path, out: Path, entrypoint: str) -> dict[str, Any]:
    doc = base._job(name, ns, data, out, runPolicy={"restartPolicy": "ExitCode"})
    doc["spec"]["training"]["epochs"] = 1
    doc["spec"]["model"] = {"entrypoint": entrypoint, "kwargs": {"marker": "/out/digests"}}
    doc["spec"]["data"]["hdfs"] = {"kerberosSecret": "hdfs-keytab", "principal": "train@TEST"}
    doc["spec"]["replicas"]["worker"].update(
        replicas=1,
        env=[
            {"name": "PYTHONPATH", "value": str(lifecycle.MODELS)},
            {
                "name": "HADOOP_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hdfs-token", "key": "token"}},
            },
        ],
    )
    return doc


@pytest.mark.timeout(420)
def test_keytab_and_token_never_reach_logs_events_or_status(
    cluster: Cluster,
    kubelet: TestKubelet,
    operator: RunningOperator,
    digits_host_dir: Path,
    out_dir: Path,
) -> None:
    ns = base._namespace(cluster, "rel-secrets")
    keytab = f"FAKE-KEYTAB-{uuid.uuid4().hex}"
    token = f"HDFS_DELEGATION_TOKEN-{uuid.uuid4().hex}"
    _secret(cluster, ns, "hdfs-keytab", "keytab", keytab)
    _secret(cluster, ns, "hdfs-token", "token", token)
    base._apply(cluster, _job("trains", ns, digits_host_dir, out_dir, "faulty:digests_of_secrets"))
    base._apply(cluster, _job("breaks", ns, digits_host_dir, out_dir, "faulty:raises"))

    trained = lifecycle._wait_phase(
        cluster, ns, "trains", ("Succeeded", "Failed"), 300, operator.log
    )
    broke = lifecycle._wait_phase(cluster, ns, "breaks", ("Succeeded", "Failed"), 120, operator.log)
    assert trained["phase"] == "Succeeded", trained
    assert broke["phase"] == "Failed", broke
    # The secrets did reach the trainer: it saw exactly their bytes.
    assert (out_dir / "digests").read_text().split() == [
        hashlib.sha256(keytab.encode()).hexdigest(),
        hashlib.sha256(token.encode()).hexdigest(),
    ]

    places = outputs(cluster, kubelet, operator, ns, ["trains", "breaks"])
    pod_logs = [where for where in places if where.endswith(".log")]
    assert len(pod_logs) == 2, pod_logs
    assert b"Traceback" in places[pod_logs[0]] + places[pod_logs[1]]
    leaked = leaks(places, [keytab.encode(), token.encode()])
    assert not leaked, f"a secret was written to {leaked}"


def outputs(
    cluster: Cluster, kubelet: TestKubelet, operator: RunningOperator, ns: str, jobs: list[str]
) -> dict[str, bytes]:
    """Everything a secret could leak into, by where: the namespace's pod logs, the
    operator's log, the jobs (status included) and the namespace's Events."""
    places = {str(p): p.read_bytes() for p in sorted((kubelet.root / "logs").glob(f"{ns}_*.log"))}
    places["operator log"] = operator.log().encode()
    for name in jobs:
        places[f"{name} object"] = json.dumps(base._get(cluster, ns, name)).encode()
    places["events"] = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout.encode()
    return places


def leaks(places: dict[str, bytes], secrets: list[bytes]) -> list[str]:
    """The places holding any of `secrets`, plain or base64-encoded."""
    forms = [form for secret in secrets for form in (secret, base64.b64encode(secret))]
    return [where for where, data in places.items() if any(f in data for f in forms)]
