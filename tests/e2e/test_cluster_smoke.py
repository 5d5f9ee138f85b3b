"""Smoke tests proving the harness cluster is a real control plane.

Each test checks a feature the operator's e2e tests rely on: admission with
CEL, controller-manager garbage collection, and RBAC for ServiceAccounts.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster

pytestmark = [pytest.mark.e2e]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.timeout(120)
def test_readyz(cluster: Cluster) -> None:
    """kubectl reaches the apiserver with the admin kubeconfig."""
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.kubetrain.io"},
    "spec": {
        "group": "smoke.kubetrain.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer"},
                                    "maxReplicas": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.replicas <= self.maxReplicas",
                                        "message": "replicas must not exceed maxReplicas",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _widget(name: str, replicas: int, max_replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "smoke.kubetrain.io/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "maxReplicas": max_replicas},
        }
    )


@pytest.mark.timeout(120)
def test_crd_cel_validation_rejects_invalid_object(cluster: Cluster, tmp_path: Path) -> None:
    """CEL x-kubernetes-validations run in the apiserver, as the project CRD relies on."""
    crd = tmp_path / "widget-crd.json"
    crd.write_text(json.dumps(WIDGET_CRD))
    cluster.apply_crds(crd)

    cluster.kubectl("apply", "-f", "-", input=_widget(_name("ok"), 1, 2))
    bad = cluster.kubectl("apply", "-f", "-", input=_widget(_name("bad"), 3, 2), check=False)
    assert bad.returncode != 0
    assert "replicas must not exceed maxReplicas" in bad.stderr


@pytest.mark.timeout(120)
def test_owner_reference_garbage_collection(cluster: Cluster) -> None:
    """Deleting an owner removes its dependents: the controller-manager's GC works."""
    from kubernetes import client

    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        owner = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=_name("owner")))
        )
        ref = client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name=owner.metadata.name, uid=owner.metadata.uid
        )
        dependent = core.create_namespaced_config_map(
            "default",
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=_name("dependent"), owner_references=[ref])
            ),
        )
        core.delete_namespaced_config_map(owner.metadata.name, "default")

        def gone() -> bool:
            names = [cm.metadata.name for cm in core.list_namespaced_config_map("default").items]
            return dependent.metadata.name not in names

        deadline = time.monotonic() + 30
        while not gone():
            assert time.monotonic() < deadline, "dependent ConfigMap not collected in 30s"
            time.sleep(0.2)


def _can_list_pods(cluster: Cluster, kubeconfig: Path, namespace: str) -> bool:
    out = cluster.kubectl(
        "auth", "can-i", "list", "pods", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    return out.stdout.strip() == "yes"


@pytest.mark.timeout(120)
def test_serviceaccount_needs_rbac(cluster: Cluster) -> None:
    """A ServiceAccount token is denied until a Role+RoleBinding grants it (RBAC on)."""
    ns = _name("smoke-rbac")
    sa_config = cluster.serviceaccount_kubeconfig(ns, "reader")
    assert not _can_list_pods(cluster, sa_config, ns)
    denied = cluster.kubectl("get", "pods", "-n", ns, kubeconfig=sa_config, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    cluster.kubectl("create", "role", "pod-reader", "-n", ns, "--verb=list", "--resource=pods")
    cluster.kubectl(
        "create", "rolebinding", "pod-reader", "-n", ns,
        "--role=pod-reader", f"--serviceaccount={ns}:reader",
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _can_list_pods(cluster, sa_config, ns):
        assert time.monotonic() < deadline, "RoleBinding not effective within 30s"
        time.sleep(0.2)
    cluster.kubectl("get", "pods", "-n", ns, kubeconfig=sa_config)
