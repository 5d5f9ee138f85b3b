"""The operator's I/O with the Kubernetes API: small calls, nothing decided here."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetrain_operator import api, metrics, plan
from kubetrain_operator.status import Event

log = logging.getLogger(__name__)


def load_config() -> None:
    """In-cluster ServiceAccount config in a pod, else the local kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class Kube:
    """Thin wrappers over the API calls the operator makes (see manifests/rbac.yaml)."""

    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        *,
        max_concurrent_creates: int = 16,
        other_callers: int = 8,
    ) -> None:
        """`max_concurrent_creates` bounds creates of all jobs together;
        `other_callers` is how many threads make other calls at once."""
        if api_client is None:
            # The client's default pool is cpu_count * 5 connections (10 on 2
            # cores); fewer than the callers means most requests open a new TLS
            # connection and throw it away.
            cfg = client.Configuration.get_default_copy()
            cfg.connection_pool_maxsize = max_concurrent_creates + other_callers
            api_client = client.ApiClient(cfg)
        self.api_client = api_client
        self._creates = ThreadPoolExecutor(max_concurrent_creates, thread_name_prefix="create")
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.networking = client.NetworkingV1Api(self.api_client)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        metrics.API_REQUESTS.labels(verb="get", resource=api.PLURAL).inc()
        try:
            return self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The job's pods as the API sends them (camelCase dicts).

        Raw JSON: the client's V1Pod models, turned back into dicts, cost
        several times the parse (each pod of a 512-worker job is ~33 KB).
        """
        metrics.API_REQUESTS.labels(verb="list", resource="pods").inc()
        resp = self.core.list_namespaced_pod(
            namespace, label_selector=f"{plan.LABEL_JOB}={job_name}", _preload_content=False
        )
        return json.loads(_body(resp))["items"]

    def list_all_pods(self, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        """Every job pod in `namespace` (None: the cluster), and the list's
        resourceVersion, to watch from."""
        metrics.API_REQUESTS.labels(verb="list", resource="pods").inc()
        kwargs: dict[str, Any] = {"label_selector": plan.LABEL_JOB, "_preload_content": False}
        if namespace is None:
            resp = self.core.list_pod_for_all_namespaces(**kwargs)
        else:
            resp = self.core.list_namespaced_pod(namespace, **kwargs)
        body = json.loads(_body(resp))
        return body["items"], body["metadata"]["resourceVersion"]

    def watch_pods(
        self, namespace: str | None, resource_version: str, timeout: int
    ) -> Iterator[dict[str, Any]]:
        """Watch events of job pods after `resource_version`, as raw dicts, until
        the server ends the watch (`timeout` seconds) or the connection breaks.

        Raw lines: the client's Watch builds a V1Pod model per event.
        """
        metrics.API_REQUESTS.labels(verb="watch", resource="pods").inc()
        kwargs: dict[str, Any] = {
            "label_selector": plan.LABEL_JOB,
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout,
            "_preload_content": False,
            "_request_timeout": (10, timeout + 30),
        }
        if namespace is None:
            resp = self.core.list_pod_for_all_namespaces(**kwargs)
        else:
            resp = self.core.list_namespaced_pod(namespace, **kwargs)
        try:
            for line in _lines(resp):
                yield json.loads(line)
        finally:
            resp.release_conn()

    def create(self, obj: dict[str, Any]) -> bool:
        """Create a Pod, Service or NetworkPolicy; False when it already exists (409 is fine)."""
        namespace = obj["metadata"]["namespace"]
        kind = obj["kind"]
        metrics.API_REQUESTS.labels(verb="create", resource=kind.lower() + "s").inc()
        creator = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
        }[kind]
        try:
            # Nobody reads the created object: skip deserialising it into a model.
            # Errors still raise ApiException (the client checks the status).
            _body(creator(namespace, obj, _preload_content=False))
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def create_all(self, objects: list[dict[str, Any]]) -> int:
        """Create objects on the shared create threads; return how many were new."""
        return sum(self._creates.map(self.create, objects))

    def delete_pods(self, namespace: str, names: Iterable[str]) -> None:
        for name in names:
            metrics.API_REQUESTS.labels(verb="delete", resource="pods").inc()
            try:
                self.core.delete_namespaced_pod(name, namespace)
            except ApiException as err:
                if err.status != 404:
                    raise

    def delete_job(self, namespace: str, name: str) -> None:
        metrics.API_REQUESTS.labels(verb="delete", resource=api.PLURAL).inc()
        try:
            self.custom.delete_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                body=client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as err:
            if err.status != 404:
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        metrics.API_REQUESTS.labels(verb="patch", resource=api.PLURAL + "/status").inc()
        self.custom.patch_namespaced_custom_object_status(
            api.GROUP, api.VERSION, namespace, api.PLURAL, name, {"status": status}
        )

    def post_event(self, job: dict[str, Any], event: Event) -> None:
        """Record an Event on the TrainingJob (best effort: never fails a reconcile)."""
        meta = job["metadata"]
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=api.API_VERSION,
                kind=api.KIND,
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            type=event.type,
            reason=event.reason,
            message=event.message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="kubetrain-operator"),
        )
        metrics.API_REQUESTS.labels(verb="create", resource="events").inc()
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as err:
            log.warning("cannot record event %s on %s: %s", event.reason, meta["name"], err.reason)


def _body(resp: Any) -> bytes:
    """Read a raw (`_preload_content=False`) response whole, returning its connection."""
    try:
        return resp.data
    finally:
        resp.release_conn()


def _lines(resp: Any) -> Iterator[bytes]:
    """The non-empty lines of a streamed response; a line may span many chunks."""
    pending: list[bytes] = []
    for chunk in resp.stream(None, decode_content=False):
        *done, rest = chunk.split(b"\n")
        if done:
            pending.append(done[0])
            done[0] = b"".join(pending)
            pending = []
            yield from (line for line in done if line)
        if rest:
            pending.append(rest)


def fetch_progress(pod_ip: str, port: int, timeout: float) -> dict[str, Any] | None:
    """The reporter's /progress, or None when it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:{port}/progress", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None
