"""The operator on a real apiserver: real pods through the test kubelet, real training.

`kubectl apply` a TrainingJob -> the operator (as its least-privilege
ServiceAccount) creates headless services and pods -> the test kubelet runs
`python -m kubetrain_trainer` from each pod spec unchanged -> status shows
phase, replica counts and progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("create", "namespace", name, check=False)
    return name


def _job(name: str, namespace: str, data_dir: Path, out_dir: Path, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["training"]["epochs"] = 6
    doc["spec"]["data"].update(
        train="/data/digits/train",
        validation="/data/digits/validation",
        volumes=[
            {
                "name": "digits",
                "mountPath": "/data/digits",
                "source": {"hostPath": {"path": str(data_dir)}},
            },
            {
                "name": "out",
                "mountPath": "/out",
                "readOnly": False,
                "source": {"hostPath": {"path": str(out_dir), "type": "DirectoryOrCreate"}},
            },
        ],
    )
    doc["spec"]["output"]["modelDir"] = "/out/model"
    for key, value in spec.items():
        doc["spec"][key] = {**doc["spec"].get(key, {}), **value}
    return doc


def _apply(cluster: Cluster, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def _get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "trainingjob", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)


def _wait(what: str, probe: Callable[[], Any], timeout: float, diag: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{diag()}")


def _wait_no_pods(cluster: Cluster, namespace: str, diag: Callable[[], str]) -> None:
    """The operator deleted every pod in `namespace` (a finished or failed job keeps none)."""
    _wait(
        f"no pods in {namespace}",
        lambda: not cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.strip(),
        60,
        diag,
    )


def _delete_and_collect(
    cluster: Cluster, namespace: str, names: Iterable[str], diag: Callable[[], str]
) -> None:
    """Delete jobs and wait until their pods and services are garbage-collected:
    the owner references leave nothing orphaned."""
    for name in names:
        cluster.kubectl("delete", "trainingjob", name, "-n", namespace, "--wait=true")

    def children() -> str:
        return cluster.kubectl("get", "pods,svc", "-n", namespace, "-o", "name").stdout.strip()

    _wait("children garbage-collected", lambda: not children(), 90, diag)


def _phase(cluster: Cluster, namespace: str, name: str) -> str:
    return (_get(cluster, namespace, name).get("status") or {}).get("phase", "")


@pytest.mark.timeout(480)
def test_digits_job_trains_to_success(
    cluster: Cluster,
    operator: RunningOperator,
    kubelets: Any,
    digits_host_dir: Path,
    out_dir: Path,
) -> None:
    ns = _namespace(cluster, "e2e-train")
    doc = _job("digits", ns, digits_host_dir, out_dir)
    _apply(cluster, doc)

    def diag() -> str:
        pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout
        logs = "\n".join(kubelets.logs(ns, f"digits-worker-{i}")[-3000:] for i in range(2))
        return f"{pods}\n{logs}\n--- operator ---\n{operator.log()[-4000:]}"

    seen_running = _wait(
        "Running with progress",
        lambda: (
            (s := _get(cluster, ns, "digits").get("status") or {}).get("phase") == "Running"
            and (s.get("progress") or {}).get("step", 0) > 0
            and s
        ),
        300,
        diag,
    )
    assert seen_running["replicaStatuses"]["worker"]["active"] == 2
    status = _wait(
        "Succeeded",
        lambda: (
            (s := _get(cluster, ns, "digits").get("status") or {}).get("phase")
            in ("Succeeded", "Failed")
            and s
        ),
        300,
        diag,
    )
    assert status["phase"] == "Succeeded", diag()
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert "worker 0 (no chief) digits-worker-0 succeeded" in conditions["Succeeded"]["message"]
    # The last epoch, from the chief's termination message, even if no poll saw it.
    assert status["progress"]["epoch"] == doc["spec"]["training"]["epochs"], status["progress"]
    assert status["progress"]["loss"] is not None
    saved = json.loads((out_dir / "model" / "job.json").read_text())
    assert status["progress"]["metrics"]["val_accuracy"] == saved["metrics"]["val_accuracy"]
    assert saved["metrics"]["val_accuracy"] >= 0.85, saved["metrics"]

    table = cluster.kubectl("get", "tj", "-n", ns).stdout
    assert "PHASE" in table and "EPOCH" in table and "Succeeded" in table
    services = cluster.kubectl("get", "svc", "-n", ns, "-o", "name").stdout.split()
    assert sorted(services) == ["service/digits-worker-0", "service/digits-worker-1"]
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"TrainingJobCreated", "TrainingJobSucceeded"} <= reasons
    assert "kubetrain_objects_created_total" in operator.metrics()


@pytest.mark.timeout(240)
def test_unschedulable_gpu_job_fails_with_reason(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = _namespace(cluster, "e2e-gpu")
    doc = _job("gpu", ns, digits_host_dir, out_dir, runPolicy={"schedulingTimeoutSeconds": 10})
    doc["spec"]["replicas"]["worker"]["gpus"] = 1
    _apply(cluster, doc)
    status = _wait(
        "Failed",
        lambda: (s := _get(cluster, ns, "gpu").get("status") or {}).get("phase") == "Failed" and s,
        120,
        operator.log,
    )
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in failed["message"], failed["message"]
    _wait_no_pods(cluster, ns, operator.log)


@pytest.mark.timeout(240)
def test_permanent_failure_fails_job_and_deleting_job_removes_children(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = _namespace(cluster, "e2e-fail")
    doc = _job("broken", ns, digits_host_dir, out_dir, runPolicy={"restartPolicy": "ExitCode"})
    doc["spec"]["data"]["train"] = "/data/digits/no-such-dir"
    _apply(cluster, doc)
    status = _wait(
        "Failed",
        lambda: (
            (s := _get(cluster, ns, "broken").get("status") or {}).get("phase") == "Failed" and s
        ),
        180,
        operator.log,
    )
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodFailed"
    assert "exit code 2" in failed["message"] and status["restartCount"] == 0
    # The trainer's own reason reaches the condition, through the termination message.
    assert "no input files match '/data/digits/no-such-dir'" in failed["message"], failed
    _delete_and_collect(cluster, ns, ["broken"], operator.log)
