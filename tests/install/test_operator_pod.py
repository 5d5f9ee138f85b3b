"""The operator as its own Deployment's pod, installed as a user would.

`kubectl apply -f manifests/` (or `helm install` of charts/kubetrain) on the
session control plane: the ReplicaSet controller creates the operator pod, the
scheduler binds it to a test kubelet, and the kubelet runs the image's
ENTRYPOINT (from the Dockerfile's operator stage) in the pod's own network
namespace. The operator has no kubeconfig there: it logs in with the
ServiceAccount token and CA the kubelet mounts, so every call it makes goes
through the RBAC the install created. A digits TrainingJob then trains to
Succeeded, with progress the operator polls from the trainer pod, and the
documented uninstall leaves no operator object behind.

The test kubelet ignores the securityContext and runs no probes (the test asks
/healthz itself); see tests/harness/kubelet.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import pods_use_this_virtualenv
from tests.harness.cluster import Cluster
from tests.harness.kubelet import KubeletPool, TestKubelet
from tests.install.chartlib import CHART, MANIFESTS, REPO, helm_bin

pytestmark = pytest.mark.e2e
_wait = base._wait

IMAGE = "kubetrain/operator:0.1.0"
NAMESPACE = "kubetrain-system"
OPERATOR = "app.kubernetes.io/component=operator"
CRD = "trainingjobs.kubetrain.io"
#: Kinds an install creates for the operator (plus its pod and ReplicaSet).
OPERATOR_KINDS = (
    "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,"
    "clusterroles,clusterrolebindings"
)


def _image_entrypoint() -> list[str]:
    """The operator stage's ENTRYPOINT in the Dockerfile, `python` being this interpreter."""
    stage = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stage = line.split()[-1]
        elif stage == "operator" and line.startswith("ENTRYPOINT "):
            argv = json.loads(line.removeprefix("ENTRYPOINT "))
            return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    raise AssertionError("no ENTRYPOINT in the Dockerfile's operator stage")


def _operator_processes() -> list[int]:
    """PIDs of `python -m kubetrain_operator` processes this test run started (any depth).

    Operators of other test modules are children of this process too, so this
    is every operator that could act on the session's cluster.
    """
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            if b"-m\0kubetrain_operator" in cmdlines.get(pid, b""):
                found.append(pid)
    return found


def _pods(cluster: Cluster, namespace: str, selector: str = OPERATOR) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    return list(json.loads(out.stdout)["items"])


def _healthz(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:8081/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _left(cluster: Cluster, kinds: str, selector: str) -> str:
    """Objects of `kinds` in any namespace matching `selector`, one name per line."""
    out = cluster.kubectl("get", kinds, "-A", "-l", selector, "-o", "name")
    return out.stdout.strip()


@pytest.fixture
def operator_image(
    cluster: Cluster, kubelet: TestKubelet, kubelets: KubeletPool, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KubeletPool]:
    """Every test kubelet runs the operator image; no other operator is running.

    Also makes sure the install is gone afterwards, even when a test fails
    half-way, and puts the CRD back that `kubectl delete -f manifests/` removes,
    since later test modules use the session cluster.
    """
    pods_use_this_virtualenv()  # trainer pods run `python -m kubetrain_trainer`
    entrypoint = _image_entrypoint()
    for k in kubelets.kubelets.values():
        monkeypatch.setitem(k.image_entrypoints, IMAGE, entrypoint)
    assert not _operator_processes(), "another operator runs against the session cluster"
    assert not _left(cluster, "pods", OPERATOR), "an operator pod is left from another test"
    yield kubelets
    cluster.kubectl("delete", "-f", str(MANIFESTS), "--ignore-not-found", check=False)
    _helm(cluster, "uninstall", "kubetrain", "-n", NAMESPACE, "--ignore-not-found", check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", check=False)
    cluster.apply_project_crds()
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")


def _helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    home = cluster.workdir / "helm"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    proc = subprocess.run(
        [str(helm_bin()), *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _operator_pod_serving(cluster: Cluster, kubelets: KubeletPool) -> dict[str, Any]:
    """Wait for one Running operator pod whose /healthz answers and that holds the Lease."""

    def diag() -> str:
        pods = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout
        events = cluster.kubectl("get", "events", "-n", NAMESPACE, check=False).stdout
        logs = "".join(
            _pod_log(kubelets, p["metadata"]["name"])
            for p in _pods(cluster, NAMESPACE)
            if p.get("spec", {}).get("nodeName")
        )
        return f"{pods}\n{events}\n--- operator pod ---\n{logs[-4000:]}"

    def serving() -> dict[str, Any] | None:
        pods = [p for p in _pods(cluster, NAMESPACE) if not p["metadata"].get("deletionTimestamp")]
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        if len(running) == 1 and _healthz(running[0]["status"].get("podIP", "")):
            return running[0]
        return None

    pod = _wait("the operator pod Running and /healthz answering", serving, 120, diag)
    name = pod["metadata"]["name"]

    def leads() -> bool:
        lease = cluster.kubectl(
            "get", "lease", "kubetrain-operator", "-n", NAMESPACE, "-o", "json", check=False
        )
        return lease.returncode == 0 and json.loads(lease.stdout)["spec"]["holderIdentity"] == name

    # A Lease left by an earlier operator expires within about 15 s.
    _wait(f"{name} to hold the leader Lease", leads, 60, diag)
    assert len(_operator_processes()) == 1, "the pod's operator is not the only one"
    return pod


def _pod_log(kubelets: KubeletPool, pod: str) -> str:
    try:
        return kubelets.logs(NAMESPACE, pod, "operator")
    except FileNotFoundError:
        return ""


def _train_digits(
    cluster: Cluster,
    kubelets: KubeletPool,
    operator_pod: str,
    namespace: str,
    data_dir: Path,
    out: Path,
) -> None:
    """A 2-worker digits job trains to Succeeded, with progress, then is deleted."""
    cluster.kubectl("create", "namespace", namespace, check=False)
    doc = base._job("digits", namespace, data_dir, out)  # 6 epochs, 2 workers
    base._apply(cluster, doc)

    def diag() -> str:
        pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        logs = []
        for i in range(2):
            try:
                logs.append(kubelets.logs(namespace, f"digits-worker-{i}")[-3000:])
            except FileNotFoundError:
                logs.append(f"(no logs of digits-worker-{i})")
        operator_log = _pod_log(kubelets, operator_pod)[-4000:]
        return f"{pods}\n" + "\n".join(logs) + f"\n--- operator pod ---\n{operator_log}"

    def status() -> dict[str, Any]:
        return base._get(cluster, namespace, "digits").get("status") or {}

    running = _wait(
        "Running with progress",
        lambda: (
            (s := status()).get("phase") in ("Running", "Succeeded")
            and (s.get("progress") or {}).get("step", 0) > 0
            and s
        ),
        300,
        diag,
    )
    assert running["replicaStatuses"]["worker"]["active"] == 2 or running["phase"] == "Succeeded"
    done = _wait(
        "Succeeded",
        lambda: (s := status()).get("phase") in ("Succeeded", "Failed") and s,
        300,
        diag,
    )
    assert done["phase"] == "Succeeded", diag()
    # The operator polls every KUBETRAIN_RESYNC_SECONDS (5 s): the last poll may be mid-epoch.
    assert done["progress"]["step"] > 0 and done["progress"]["loss"] is not None
    assert (out / "model" / "job.json").is_file()
    table = cluster.kubectl("get", "tj", "-n", namespace).stdout
    assert "PHASE" in table and "Succeeded" in table, table
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    assert {"TrainingJobCreated", "TrainingJobSucceeded"} <= {e["reason"] for e in events["items"]}

    cluster.kubectl("delete", "trainingjob", "digits", "-n", namespace, "--wait=true")
    children = ["get", "pods,svc", "-n", namespace, "-o", "name"]
    _wait(
        "the job's pods and services deleted",
        lambda: not cluster.kubectl(*children).stdout.strip(),
        60,
        diag,
    )


@pytest.mark.timeout(600)
def test_kubectl_apply_runs_operator_pod_and_delete_removes_it(
    cluster: Cluster, operator_image: KubeletPool, digits_host_dir: Path, out_dir: Path
) -> None:
    started = time.monotonic()
    cluster.kubectl("apply", "-f", str(MANIFESTS))
    pod = _operator_pod_serving(cluster, operator_image)
    print(f"\noperator pod serving {time.monotonic() - started:.1f}s after kubectl apply")
    assert pod["spec"]["serviceAccountName"] == "kubetrain-operator"

    _train_digits(
        cluster, operator_image, pod["metadata"]["name"], "pod-kubectl", digits_host_dir, out_dir
    )
    print(f"digits job done and deleted at {time.monotonic() - started:.1f}s")

    cluster.kubectl("delete", "-f", str(MANIFESTS), "--wait=true", timeout=180)
    assert not _left(cluster, OPERATOR_KINDS, "app.kubernetes.io/name=kubetrain")
    assert cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0
    assert cluster.kubectl("get", "crd", CRD, check=False).returncode != 0
    _wait("the operator process gone", lambda: not _operator_processes(), 30, str)
    print(f"uninstalled at {time.monotonic() - started:.1f}s")


@pytest.mark.timeout(600)
def test_helm_install_runs_operator_pod_and_uninstall_removes_it(
    cluster: Cluster, operator_image: KubeletPool, digits_host_dir: Path, out_dir: Path
) -> None:
    started = time.monotonic()
    cluster.apply_project_crds()  # as after an earlier install: helm keeps an existing CRD
    _helm(
        cluster, "install", "kubetrain", str(CHART), "--namespace", NAMESPACE, "--create-namespace"
    )
    pod = _operator_pod_serving(cluster, operator_image)
    print(f"\noperator pod serving {time.monotonic() - started:.1f}s after helm install")
    assert pod["spec"]["serviceAccountName"] == "kubetrain-operator"

    _train_digits(
        cluster, operator_image, pod["metadata"]["name"], "pod-helm", digits_host_dir, out_dir
    )
    print(f"digits job done and deleted at {time.monotonic() - started:.1f}s")

    _helm(cluster, "uninstall", "kubetrain", "--namespace", NAMESPACE, "--wait")
    _wait(
        "no operator objects",
        lambda: not _left(cluster, OPERATOR_KINDS, "app.kubernetes.io/instance=kubetrain"),
        60,
        lambda: _left(cluster, OPERATOR_KINDS, "app.kubernetes.io/instance=kubetrain"),
    )
    _wait("the operator process gone", lambda: not _operator_processes(), 30, str)
    # Helm keeps the CRD (and every TrainingJob); the namespace was --create-namespace'd.
    assert cluster.kubectl("get", "crd", CRD).returncode == 0
    print(f"uninstalled at {time.monotonic() - started:.1f}s")
