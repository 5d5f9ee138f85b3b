"""Scale check (issue 5): a 512-worker TrainingJob on kwok's fake nodes.

The real operator (least-privilege ServiceAccount) plans and creates 512
headless services and 512 pods; the real kube-scheduler binds the pods to
kwok nodes (the workers tolerate kwok's taint and select its nodes), kwok
reports them Running without running anything, and the job's status must say
Running with 512 active workers. Deleting the job must garbage-collect every
pod and service through owner references.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator, operator_session
from tests.harness import kwok as kwok_harness
from tests.harness.cluster import Cluster
from tests.harness.kwok import NODE_SELECTOR, TOLERATIONS, Kwok

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "e2e-scale"
WORKERS = 512
pytestmark = pytest.mark.e2e
kwok_nodes = kwok_harness.kwok_nodes  # the module-scoped fixture: 8 fake nodes


def scale_job(name: str, namespace: str, workers: int) -> dict[str, Any]:
    """A TrainingJob whose workers can only land on kwok nodes (nothing really runs)."""
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["data"].update(train="/data/digits/train", validation="/data/digits/validation")
    doc["spec"]["output"]["modelDir"] = "/out/model"
    doc["spec"]["replicas"] = {
        "worker": {"replicas": workers, "nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS}
    }
    return doc


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, kwok_nodes: Kwok, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    yield from operator_session(cluster, tmp_path_factory.mktemp("operator-scale"))


def _count(cluster: Cluster, kind: str, namespace: str, job: str) -> int:
    out = cluster.kubectl(
        "get", kind, "-n", namespace, "-l", f"kubetrain.io/job-name={job}", "-o", "name"
    ).stdout
    return len(out.split())


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "trainingjob", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out).get("status") or {}


@pytest.mark.timeout(600)
def test_512_workers_run_and_are_garbage_collected(
    cluster: Cluster, operator: RunningOperator, kwok_nodes: Kwok
) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    name = "scale"

    def diag() -> str:
        pods, svcs = (
            _count(cluster, "pods", NAMESPACE, name),
            _count(cluster, "svc", NAMESPACE, name),
        )
        return (
            f"pods={pods} services={svcs} status={json.dumps(_status(cluster, NAMESPACE, name))}\n"
            f"--- kwok ---\n{kwok_nodes.tail(5)}\n--- operator ---\n{operator.log()[-4000:]}"
        )

    t0 = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(scale_job(name, NAMESPACE, WORKERS)))
    base._wait(
        f"{WORKERS} pods and services",
        lambda: (
            _count(cluster, "pods", NAMESPACE, name) == WORKERS
            and _count(cluster, "svc", NAMESPACE, name) == WORKERS
        ),
        300,
        diag,
    )
    created = time.monotonic() - t0
    status = base._wait(
        "status Running with every worker active",
        lambda: (
            (s := _status(cluster, NAMESPACE, name)).get("phase") == "Running"
            and s["replicaStatuses"]["worker"]["active"] == WORKERS
            and s
        ),
        300,
        diag,
    )
    running = time.monotonic() - t0
    print(f"\n{WORKERS} workers: all objects in {created:.1f}s, Running in {running:.1f}s")
    assert status["replicaStatuses"]["worker"] == {"active": WORKERS, "succeeded": 0, "failed": 0}
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Created"] == "True" and conditions["Running"] == "True"
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert {p["spec"]["nodeName"] for p in pods} <= set(kwok_nodes.nodes)
    assert all(p["status"]["phase"] == "Running" for p in pods)

    cluster.kubectl("delete", "trainingjob", name, "-n", NAMESPACE, "--wait=false")
    base._wait(
        "pods and services garbage-collected",
        lambda: (
            _count(cluster, "pods", NAMESPACE, name) == 0
            and _count(cluster, "svc", NAMESPACE, name) == 0
        ),
        240,
        diag,
    )
