"""The pod cache against a real apiserver: list, watch, relist, and the
entries the operator makes ahead of the watch."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetrain_operator import kube, plan
from kubetrain_operator.podcache import PodCache
from tests.harness.cluster import Cluster

JOB = "cached"


def _wait(probe: Callable[[], bool], what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _pod(namespace: str, name: str, job: str = JOB) -> dict[str, Any]:
    labels = {plan.LABEL_JOB: job, plan.LABEL_TYPE: "worker", plan.LABEL_INDEX: "0"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "none", "env": [{"name": "BIG", "value": "x"}]}],
        },
    }


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"podcache-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": name}})

    def has_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException:
            return False
        return True

    _wait(has_account, "the default ServiceAccount")
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kubeapi(cluster: Cluster) -> kube.Kube:
    return kube.Kube(cluster.api_client())


def _names(cache: PodCache, namespace: str, job: str = JOB) -> set[str]:
    return {p["metadata"]["name"] for p in cache.pods(namespace, job)}


def test_lists_then_follows_the_watch(kubeapi: kube.Kube, namespace: str) -> None:
    for name in ("a", "b"):
        kubeapi.create(_pod(namespace, name))
    kubeapi.create(_pod(namespace, "other", job="another"))
    changes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def changed(ns: str, job: str) -> None:
        with lock:
            changes.append((ns, job))

    cache = PodCache(kubeapi, (namespace,), changed)
    # Not listed yet: a LIST answers, never an empty cache.
    assert not cache.synced(namespace)
    assert _names(cache, namespace) == {"a", "b"}
    cache.start()
    try:
        _wait(lambda: cache.synced(namespace), "the first list")
        assert _names(cache, namespace) == {"a", "b"}
        assert (namespace, JOB) in changes and (namespace, "another") in changes
        # Served from memory, slimmed: no spec beyond the node.
        assert all("containers" not in p["spec"] for p in cache.pods(namespace, JOB))

        kubeapi.create(_pod(namespace, "c"))
        _wait(lambda: _names(cache, namespace) == {"a", "b", "c"}, "the watch to add c")
        kubeapi.core.delete_namespaced_pod("a", namespace, grace_period_seconds=0)
        _wait(lambda: _names(cache, namespace) == {"b", "c"}, "the watch to drop a")
        assert _names(cache, namespace, "another") == {"other"}
    finally:
        cache.stop()


def test_creations_and_deletions_count_before_their_events(
    kubeapi: kube.Kube, namespace: str
) -> None:
    kubeapi.create(_pod(namespace, "old"))
    cache = PodCache(kubeapi, (namespace,), lambda ns, job: None)
    cache.start()
    try:
        _wait(lambda: cache.synced(namespace), "the first list")
        new = [_pod(namespace, "new")]
        entries = cache.creating([*new, _pod(namespace, "old")])
        assert len(entries) == 1  # "old" is the watch's already
        assert _names(cache, namespace) == {"old", "new"}
        kubeapi.create(new[0])

        def real() -> bool:
            pods = {p["metadata"]["name"]: p for p in cache.pods(namespace, JOB)}
            return bool(pods["new"]["metadata"].get("uid"))

        _wait(real, "the watch to replace the entry")
        cache.forget_created(entries)  # replaced: stays
        assert _names(cache, namespace) == {"old", "new"}

        failed = cache.creating([_pod(namespace, "never")])
        cache.forget_created(failed)
        assert _names(cache, namespace) == {"old", "new"}

        cache.deleted(namespace, JOB, ["old"])
        old = next(p for p in cache.pods(namespace, JOB) if p["metadata"]["name"] == "old")
        assert old["metadata"]["deletionTimestamp"]
    finally:
        cache.stop()


def test_relist_drops_pods_deleted_while_not_watching(kubeapi: kube.Kube, namespace: str) -> None:
    for name in ("a", "b"):
        kubeapi.create(_pod(namespace, name))
    cache = PodCache(kubeapi, (namespace,), lambda ns, job: None)
    cache._relist(namespace)
    assert _names(cache, namespace) == {"a", "b"}
    kubeapi.core.delete_namespaced_pod("a", namespace, grace_period_seconds=0)
    cache._relist(namespace)
    assert _names(cache, namespace) == {"b"}


class ExpiresOnce(kube.Kube):
    """The first watch answers 410 Gone, as when etcd compacted past its
    resourceVersion (a young test cluster never has); later ones are real."""

    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client)
        self.lists = 0
        self.expired = False

    def list_all_pods(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return super().list_all_pods(namespace)

    def watch_pods(
        self, namespace: str | None, resource_version: str, timeout: int
    ) -> Iterator[dict[str, Any]]:
        if not self.expired:
            self.expired = True
            return iter([{"type": "ERROR", "object": {"code": 410, "message": "too old"}}])
        return super().watch_pods(namespace, resource_version, timeout)


def test_an_expired_watch_relists(cluster: Cluster, namespace: str) -> None:
    kubeapi = ExpiresOnce(cluster.api_client())
    kubeapi.create(_pod(namespace, "a"))
    cache = PodCache(kubeapi, (namespace,), lambda ns, job: None)
    cache.start()
    try:
        _wait(lambda: kubeapi.lists == 2, "a second list after 410")
        kubeapi.create(_pod(namespace, "b"))
        _wait(lambda: _names(cache, namespace) == {"a", "b"}, "the watch after the relist")
    finally:
        cache.stop()
