"""Install for real on the harness control plane (tests/harness/cluster.py).

The apiserver checks what offline rendering cannot: every object's schema,
the pod template (the ReplicaSet controller creates the operator pod), the
CRD's CEL rules against the examples, RBAC as the operator's ServiceAccount,
and the commands charts/kubetrain/README.md gives. No kubelet runs, so the
operator pod stays Pending: the operator itself is tested in tests/e2e.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster, ClusterError, find_tools, start_cluster
from tests.install.chartlib import CHART, HERE, MANIFESTS, helm_bin

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with start_cluster(find_tools()) as c:
        yield c


def _helm(cluster: Cluster, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }
    proc = subprocess.run(
        [str(helm_bin()), *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _can(cluster: Cluster, account: str, verb: str, resource: str, namespace: str) -> bool:
    """`kubectl auth can-i` as `account`; `resource` may end in /subresource."""
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, "-n", namespace, f"--as={account}"]
    proc = cluster.kubectl(*args, *([f"--subresource={sub}"] if sub else []), check=False)
    return proc.stdout.strip() == "yes"


def _wait_for_operator_pod(cluster: Cluster, namespace: str) -> None:
    """The ReplicaSet controller creates the pod only if admission accepts its spec."""

    selector = "app.kubernetes.io/component=operator"

    def created() -> bool:
        pods = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name")
        return bool(pods.stdout.strip())

    try:
        cluster.wait_for(f"operator pod in {namespace}", created, timeout=60)
    except ClusterError:
        events = cluster.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"no operator pod in {namespace}; events:\n{events}") from None


def _create_namespaces(cluster: Cluster, *names: str) -> None:
    for name in names:
        if cluster.kubectl("get", "namespace", name, check=False).returncode != 0:
            cluster.kubectl("create", "namespace", name)


@pytest.mark.timeout(300)
def test_kubectl_install_as_documented(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(MANIFESTS / "00-namespace.yaml"))
    cluster.kubectl("apply", "-f", str(MANIFESTS))
    _wait_for_operator_pod(cluster, "kubetrain-system")
    account = "system:serviceaccount:kubetrain-system:kubetrain-operator"
    assert _can(cluster, account, "create", "pods", "any-namespace")
    assert _can(cluster, account, "patch", "trainingjobs.kubetrain.io/status", "any-namespace")
    assert not _can(cluster, account, "get", "secrets", "any-namespace")
    assert not _can(cluster, account, "update", "trainingjobs.kubetrain.io", "any-namespace")
    # Leader election: the Lease in the operator's own namespace, nowhere else.
    for verb in ("get", "create", "update"):
        assert _can(cluster, account, verb, "leases.coordination.k8s.io", "kubetrain-system")
        assert not _can(cluster, account, verb, "leases.coordination.k8s.io", "any-namespace")
    assert not _can(cluster, account, "delete", "leases.coordination.k8s.io", "kubetrain-system")


@pytest.mark.timeout(300)
def test_examples_and_network_policy_are_accepted(cluster: Cluster) -> None:
    """The CRD's schema and CEL rules accept every example, as `kubetrain validate` does."""
    cluster.apply_project_crds()
    _create_namespaces(cluster, "examples")
    cluster.kubectl("apply", "-n", "examples", "-f", str(MANIFESTS / "networkpolicy.yaml"))
    for path in sorted((MANIFESTS / "examples").glob("*.yaml")):
        cluster.kubectl("apply", "--dry-run=server", "-n", "examples", "-f", str(path))


@pytest.mark.timeout(300)
def test_helm_install_upgrade_uninstall(cluster: Cluster, tmp_path: Path) -> None:
    _create_namespaces(cluster, "team-a", "team-b")
    release = ["kt", str(CHART), "--namespace", "kt-system"]
    installed = _helm(
        cluster,
        tmp_path,
        "install",
        *release,
        "--create-namespace",
        "--values",
        str(HERE / "values-namespaced.yaml"),
    )
    _wait_for_operator_pod(cluster, "kt-system")
    # NOTES.txt: what to run next, with this release's names.
    assert "rollout status deployment/kt-kubetrain-operator" in installed.stdout
    assert "in: team-a, team-b" in installed.stdout

    account = "system:serviceaccount:kt-system:kt-kubetrain-operator"
    for namespace in ("team-a", "team-b"):
        assert _can(cluster, account, "watch", "trainingjobs.kubetrain.io", namespace)
        assert _can(cluster, account, "create", "pods", namespace)
    assert not _can(cluster, account, "create", "pods", "default")
    assert _can(cluster, account, "watch", "namespaces", "default")
    assert _can(cluster, account, "update", "leases.coordination.k8s.io", "kt-system")
    assert not _can(cluster, account, "update", "leases.coordination.k8s.io", "team-a")

    upgrade = ["upgrade", *release, "--values", str(HERE / "values-resources.yaml")]
    _helm(cluster, tmp_path, *upgrade, "--set", "replicaCount=2")
    jsonpath = "jsonpath={.spec.template.spec.containers[0].image} {.spec.replicas}"
    deployment = ["deployment", "kt-kubetrain-operator", "-n", "kt-system"]
    image = cluster.kubectl("get", *deployment, "-o", jsonpath).stdout
    assert image == "registry.example.com/kubetrain/operator:0.1.0-rc1 2"
    assert _can(cluster, account, "create", "pods", "default"), "back to cluster-wide"
    assert _can(cluster, account, "update", "leases.coordination.k8s.io", "kt-system")

    # Without leader election: one replica, and the Lease Role goes.
    _helm(cluster, tmp_path, *upgrade, "--set", "leaderElection.enabled=false")
    assert cluster.kubectl("get", *deployment, "-o", "jsonpath={.spec.replicas}").stdout == "1"
    assert not _can(cluster, account, "update", "leases.coordination.k8s.io", "kt-system")

    # The README's CRD upgrade step: take over the fields Helm created.
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds" / "crd.yaml")
    )

    _helm(cluster, tmp_path, "uninstall", "kt", "--namespace", "kt-system")
    gone = cluster.kubectl("get", "clusterrole", "kt-kubetrain-operator", check=False)
    assert gone.returncode != 0, "uninstall left the ClusterRole"
    # Helm keeps CRDs (and so every TrainingJob) on uninstall.
    assert cluster.kubectl("get", "crd", "trainingjobs.kubetrain.io").returncode == 0
