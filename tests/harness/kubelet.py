"""A test kubelet: runs the pods a real kube-scheduler binds to its Node as local processes.

It registers a Node (capacity incl. extended resources such as nvidia.com/gpu),
keeps its Lease fresh, watches pods bound to it and runs their containers as
processes, each pod in its own network namespace (see netns.py) and each
container in its own mount namespace, where volumes, /etc/hosts and
/etc/resolv.conf are bind-mounted. Status goes back through pods/status.

Wiring (tests/e2e/conftest.py)::

    from tests.harness.kubelet import kubelet, kubelets  # noqa: F401  (fixtures)

``kubelets`` (session) is a :class:`KubeletPool`: ``kubelets.start(name, capacity)``
adds nodes, ``kubelets.logs(ns, pod)`` reads container logs. ``kubelet``
(session) is the default node ``kt-node-0`` with CPU/memory but no GPU/TPU.

Names: each pod's /etc/hosts (refreshed in place every 0.5 s) maps Services with
a selector, ``<hostname>.<subdomain>``, ``host.kubetrain.test`` (the bridge IP)
and ``kubernetes.default.svc`` (bridge IP, :443 forwarded to the apiserver;
KUBERNETES_SERVICE_HOST/PORT point there, so in-cluster config verifies TLS).
Host services are reachable from pods if they listen on 0.0.0.0 or the bridge
IP, or after :meth:`TestKubelet.expose_host_port` for loopback-only ones.

Limits: no images (a container needs ``command``, or an ``image_entrypoints``
entry), no probes (a running container is Ready), no resource enforcement, no
ClusterIP routing (Service names resolve straight to pod IPs, so port must equal
targetPort), no real DNS server, no ``kubectl logs``/``exec`` (use ``logs()``),
processes share the host PID namespace and filesystem and run as root; missing
mount targets are created on the host and removed at the end.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

from tests.harness import kubelet_dns, netns
from tests.harness.kubelet_pod import (
    ApiSource,
    Mount,
    PodSpecError,
    container_argv,
    container_env,
    container_mounts,
    launch_script,
    prepare_volume,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tests.harness.cluster import Cluster

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
TERMINATION_LOG = "/dev/termination-log"
#: A real kubelet keeps at most 4096 bytes of the message (2048 from logs).
TERMINATION_MESSAGE_BYTES = 4096
#: How long a finished pod retries its last status through an apiserver outage.
FINAL_STATUS_SECONDS = 300
#: The "image" every pod runs: this checkout and its virtualenv (kept visible in pods).
IMAGE_PATHS = tuple(dict.fromkeys([str(Path(__file__).resolve().parents[2]), sys.prefix]))
DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
#: What pods get as KUBERNETES_SERVICE_HOST: a name in the apiserver cert's SANs, resolved
#: by each pod's /etc/hosts to the bridge IP, where :443 is forwarded to the apiserver.
KUBERNETES_SERVICE_NAME = "kubernetes.default.svc"
DEFAULT_NODE = "kt-node-0"
HOST_ALIAS = "host.kubetrain.test"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_404(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


class _Api:
    """The few API calls the kubelet makes, on raw JSON (no model round-trips)."""

    def __init__(self, api_client: ApiClient) -> None:
        from kubernetes import client

        cfg = copy.copy(api_client.configuration)
        cfg.connection_pool_maxsize = 32
        self.client = client.ApiClient(configuration=cfg)
        self.core = client.CoreV1Api(self.client)
        self.coord = client.CoordinationV1Api(self.client)
        self.ca_file: str | None = cfg.ssl_ca_cert

    @staticmethod
    def json(fn: Callable[..., Any], *args: Any, **kw: Any) -> Obj:
        resp = fn(*args, _preload_content=False, _request_timeout=30, **kw)
        return json.loads(resp.data or b"{}")

    def read_or_none(self, fn: Callable[..., Any], name: str, ns: str) -> Obj | None:
        try:
            return self.json(fn, name, ns)
        except Exception as exc:
            if _is_404(exc):
                return None
            raise

    def source(self) -> ApiSource:
        """What pod-spec materialization may read from the API."""

        def token(ns: str, sa: str, body: Obj) -> str:
            out = self.json(self.core.create_namespaced_service_account_token, sa, ns, body)
            return str(out["status"]["token"])

        def ca() -> str | None:
            return Path(self.ca_file).read_text() if self.ca_file else None

        return ApiSource(
            read_config_map=lambda ns, n: self.read_or_none(
                self.core.read_namespaced_config_map, n, ns
            ),
            read_secret=lambda ns, n: self.read_or_none(self.core.read_namespaced_secret, n, ns),
            request_token=token,
            ca_cert_fallback=ca,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class _Container:
    """One container of a pod: its process and its Kubernetes-shaped status."""

    def __init__(self, spec: Obj) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.restarts = 0
        self.started_once = False
        self.restart_at: float | None = 0.0
        self.container_id = ""
        self.started_at = ""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def done(self) -> bool:
        """Terminated for good: exited and no restart pending."""
        return "terminated" in self.state and self.restart_at is None

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.running,
            "started": self.running,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


class PodWorker(threading.Thread):
    """Drives one pod from bound to terminal (or deleted) on its own thread."""

    def __init__(self, kubelet: TestKubelet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.pod = pod
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.uid: str = meta["uid"]
        self.dir = kubelet.root / "pods" / self.uid
        self.net: netns.PodNet | None = None
        self.hosts_path = self.dir / "etc" / "hosts"
        self.deleting = threading.Event()
        self.gone = False  # deleted from the API already: do not delete again
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.start_time = _now()
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy", "Always")
        self.inits = [_Container(c) for c in spec.get("initContainers") or []]
        self.mains = [_Container(c) for c in spec.get("containers") or []]
        for c in self.mains if self.inits else []:
            c.state = {"waiting": {"reason": "PodInitializing"}}
        self.initialized = not self.inits
        self.volumes: dict[str, Path] = {}
        self._transitions: dict[str, tuple[str, str]] = {}
        self._published: Obj | None = None

    # -- events from the watch --------------------------------------------------
    def update(self, pod: Obj) -> None:
        """Take the newest object; a deletionTimestamp starts graceful termination."""
        self.pod["metadata"] = pod["metadata"]
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def vanish(self) -> None:
        """The pod object is gone (force-deleted): kill without deleting again."""
        self.gone = True
        self.deleting.set()

    # -- main flow ---------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._setup() and self._run_inits():
                self._run_mains()
        except Exception as exc:
            log.exception("pod %s: kubelet error", self.key)
            self._set_phase("Failed", "KubeletError", f"{exc}\n{traceback.format_exc(limit=5)}")
        finally:
            self._finish()

    def _finish(self) -> None:
        self._kill_all(self._grace() if self.deleting.is_set() else 0.0)
        if not self.deleting.is_set():
            self._publish_final()
        self.kubelet.release_pod_network(self)
        if self.deleting.is_set() and not self.gone and not self.kubelet.stopping:
            self.kubelet.delete_pod_now(self.pod)

    def _setup(self) -> bool:
        """Network, hosts/resolv files and volumes; False if the pod ended meanwhile."""
        self._publish()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.net = self.kubelet.allocate_pod_network(self)
        status = self.pod.setdefault("status", {})
        status.update(podIP=self.net.ip, podIPs=[{"ip": self.net.ip}], hostIP=self.kubelet.node_ip)
        self._write_etc()
        self._publish()
        while not self.deleting.is_set():
            try:
                self._prepare_volumes()
                return True
            except PodSpecError as err:
                if not err.retriable:
                    self._set_phase("Failed", err.reason, err.message)
                    return False
                self._all_waiting(err.reason, err.message)
                self._publish()
                self.deleting.wait(1.0)
        return False

    def _write_etc(self) -> None:
        etc = self.hosts_path.parent
        etc.mkdir(parents=True, exist_ok=True)
        self.kubelet.refresh_hosts(self)
        (etc / "resolv.conf").write_text(
            "# no cluster DNS: names come from /etc/hosts (kubetrain test kubelet)\n"
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )

    def _prepare_volumes(self) -> None:
        src = self.kubelet.api.source()
        alloc = self.kubelet.allocatable
        for vol in self.pod["spec"].get("volumes") or []:
            if vol["name"] not in self.volumes:
                root = self.dir / "volumes" / vol["name"]
                self.volumes[vol["name"]] = prepare_volume(src, self.pod, vol, root, alloc)

    def _run_inits(self) -> bool:
        """Init containers one by one, each to success; False if the pod ended."""
        for c in self.inits:
            while not c.done:
                if self.deleting.is_set():
                    return False
                self._tick(c)
                self._publish()
                if c.done and c.state["terminated"]["exitCode"] != 0:
                    self._set_phase(
                        "Failed", "InitContainerFailed", f"init container {c.name} failed"
                    )
                    return False
                self.deleting.wait(0.1)
        self.initialized = True
        for c in self.mains:
            c.state = {"waiting": {"reason": "ContainerCreating"}}
        return True

    def _run_mains(self) -> None:
        while not self.deleting.is_set():
            for c in self.mains:
                self._tick(c)
            if all(c.done for c in self.mains):
                ok = all(c.state["terminated"]["exitCode"] == 0 for c in self.mains)
                self._set_phase("Succeeded" if ok else "Failed")
                return
            if self.phase == "Pending" and any(c.started_once for c in self.mains):
                self.phase = "Running"
            self._publish()
            self.deleting.wait(0.1)

    # -- one container -------------------------------------------------------------
    def _tick(self, c: _Container) -> None:
        """Reap an exited process, or (re)start one whose time has come."""
        if c.proc is not None and (code := c.proc.poll()) is not None:
            c.proc = None
            self._exited(c, code, "Completed" if code == 0 else "Error", self._message(c, code))
        if c.proc is None and c.restart_at is not None and time.monotonic() >= c.restart_at:
            self._start(c)

    def _start(self, c: _Container) -> None:
        try:
            argv, env, mounts = self._container_config(c)
        except PodSpecError as err:
            if err.retriable:
                c.state = {"waiting": {"reason": err.reason, "message": err.message}}
                c.restart_at = time.monotonic() + 1.0
                return
            with self._open_log(c) as fh:
                fh.write(f"kubetrain test kubelet: {err.message}\n".encode())
            c.started_at = _now()
            self._exited(c, 128, err.reason, err.message)
            return
        if c.started_once:
            c.restarts += 1
        c.started_once = True
        c.container_id = f"kubetrain://{uuid.uuid4().hex}"
        c.started_at = _now()
        c.proc = self.kubelet.spawn(self, c, argv, env, mounts)
        c.state = {"running": {"startedAt": c.started_at}}
        c.restart_at = None

    def _container_config(self, c: _Container) -> tuple[list[str], dict[str, str], list[Mount]]:
        kl = self.kubelet
        env = container_env(self.pod, c.spec, kl.api.source(), kl.base_env(self), kl.allocatable)
        argv = container_argv(c.spec, env, kl.image_entrypoints)
        mounts = container_mounts(c.spec, self.volumes)
        log = self._termination_log(c)
        log.write_bytes(b"")
        mounts.append(Mount(log, c.spec.get("terminationMessagePath") or TERMINATION_LOG))
        return argv, env, mounts

    def _termination_log(self, c: _Container) -> Path:
        return self.dir / f"{c.name}.termination-log"

    def _message(self, c: _Container, code: int) -> str:
        """The container's termination message, as a real kubelet reports it.

        The file at terminationMessagePath first; with FallbackToLogsOnError
        and a failure, the tail of the log when the file is empty.
        """
        path = self._termination_log(c)
        message = path.read_bytes()[:TERMINATION_MESSAGE_BYTES] if path.exists() else b""
        fallback = c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message.strip() and fallback and code != 0:
            log = self.kubelet.log_path(self.pod, c.name)
            tail = log.read_bytes()[-TERMINATION_MESSAGE_BYTES:] if log.exists() else b""
            message = b"\n".join(tail.splitlines()[-80:])
        return message.decode(errors="replace").strip()

    def _exited(self, c: _Container, code: int, reason: str, message: str = "") -> None:
        """Record an exit (signal -> 128+n, as runtimes report it) and plan any restart."""
        code = 128 - code if code < 0 else code
        term: Obj = {
            "exitCode": code,
            "reason": reason,
            "startedAt": c.started_at,
            "finishedAt": _now(),
        }
        if message:
            term["message"] = message
        if c.container_id:
            term["containerID"] = c.container_id
        is_init = c in self.inits
        restart = self.policy == "Always" and not is_init
        restart = restart or (self.policy != "Never" and code != 0)
        if not restart or self.deleting.is_set():
            c.state = {"terminated": term}
            c.restart_at = None
            return
        c.last_state = {"terminated": term}
        delay = min(self.kubelet.backoff[0] * 2**c.restarts, self.kubelet.backoff[1])
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:.1f}s restarting failed container {c.name}",
            }
        }
        c.restart_at = time.monotonic() + delay

    def _open_log(self, c: _Container) -> Any:
        return self.kubelet.log_path(self.pod, c.name).open("ab")

    # -- termination ---------------------------------------------------------------
    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(min(grace, self.kubelet.max_grace_s))

    def _kill_all(self, grace: float) -> None:
        """SIGTERM every process group, SIGKILL what is left after grace seconds."""
        live = [c for c in self.inits + self.mains if c.proc is not None]
        for c in live:
            _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            if c.proc.poll() is None:
                _signal_group(c.proc, signal.SIGKILL)
                c.proc.wait()
            code = c.proc.returncode
            c.proc = None
            self._exited(c, code, "Error" if code else "Completed")

    # -- status ----------------------------------------------------------------------
    def _set_phase(self, phase: str, reason: str = "", message: str = "") -> None:
        self.phase, self.reason, self.message = phase, reason, message
        for c in self.inits + self.mains:
            if phase in ("Succeeded", "Failed") and "waiting" in c.state and reason:
                c.state = {"waiting": {"reason": reason, "message": message[:1000]}}
        self._publish()

    def _all_waiting(self, reason: str, message: str) -> None:
        for c in self.inits + self.mains:
            if c.proc is None:
                c.state = {"waiting": {"reason": reason, "message": message}}

    def _condition(self, kind: str, ok: bool, reason: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = self._transitions.get(kind)
        if prev is None or prev[0] != status:
            self._transitions[kind] = (status, _now())
        cond = {"type": kind, "status": status, "lastTransitionTime": self._transitions[kind][1]}
        if reason and not ok:
            cond["reason"] = reason
        return cond

    def status(self) -> Obj:
        """The whole pod status as the kubelet reports it."""
        terminal = self.phase in ("Succeeded", "Failed")
        ready = not terminal and self.initialized and all(c.running for c in self.mains)
        why = "PodCompleted" if terminal else "ContainersNotReady"
        status: Obj = {
            "phase": self.phase,
            "startTime": self.start_time,
            "hostIP": self.kubelet.node_ip,
            "hostIPs": [{"ip": self.kubelet.node_ip}],
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition("Initialized", self.initialized, "ContainersNotInitialized"),
                self._condition("ContainersReady", ready, why),
                self._condition("Ready", ready, why),
            ],
            "containerStatuses": [c.status() for c in self.mains],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.status() for c in self.inits]
        if self.net is not None:
            status.update(podIP=self.net.ip, podIPs=[{"ip": self.net.ip}])
        if self.reason:
            status.update(reason=self.reason, message=self.message)
        return status

    def _publish(self) -> bool:
        """Patch pods/status if it changed (merge patch: our lists replace theirs);
        False if the apiserver did not take it."""
        status = self.status()
        if status == self._published or self.gone:
            return True
        self.pod["status"] = {**self.pod.get("status", {}), **status}
        meta = self.pod["metadata"]
        try:
            self.kubelet.api.core.patch_namespaced_pod_status(
                meta["name"],
                meta["namespace"],
                {"status": status},
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=30,
            )
            self._published = copy.deepcopy(status)
        except Exception as exc:
            if _is_404(exc):
                self.vanish()
                return True
            log.warning("pod %s: status update failed: %s", self.key, exc)
            return False
        return True

    def _publish_final(self) -> None:
        """Retry the pod's last status until the apiserver takes it, as a real
        kubelet's status manager does: an exit during an apiserver outage must
        not leave the pod Running forever."""
        deadline = time.monotonic() + FINAL_STATUS_SECONDS
        while not self._publish() and not self.kubelet.stopping:
            if time.monotonic() >= deadline:
                log.error("pod %s: final status not taken in %ds", self.key, FINAL_STATUS_SECONDS)
                return
            time.sleep(1.0)


def _signal_group(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


_paths_lock = threading.Lock()
_created_paths: list[Path] = []
_live_kubelets = 0


def _ensure_target(target: Path, is_dir: bool) -> None:
    """Create a missing mount target on the host, remembered for removal at the end."""
    missing = [p for p in (target, *target.parents) if not p.exists() and not p.is_symlink()]
    with _paths_lock:
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        _created_paths.extend(reversed(missing))


def _remove_created_paths() -> None:
    """Remove (deepest first) the mount targets we created, if still empty."""
    with _paths_lock:
        for p in reversed(_created_paths):
            with contextlib.suppress(OSError):
                if p.is_dir():
                    p.rmdir()
                elif p.stat().st_size == 0:
                    p.unlink()
        _created_paths.clear()


class TestKubelet:
    """A Node backed by local processes; see the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        api_client: ApiClient,
        node_name: str,
        capacity: dict[str, str] | None = None,
        *,
        root_dir: Path | None = None,
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        network: str = "auto",
        bridge: str | None = None,
        cidr: str | None = None,
        apiserver: tuple[str, int] | None = None,
        extra_env: dict[str, str] | None = None,
        image_entrypoints: dict[str, list[str]] | None = None,
        max_grace_s: float = 3.0,
        backoff: tuple[float, float] = (0.5, 5.0),
        cluster_domain: str = "cluster.local",
        delete_node_on_stop: bool = True,
    ) -> None:
        """capacity: e.g. {"cpu": "8", "nvidia.com/gpu": "1"}, on top of DEFAULT_CAPACITY.

        apiserver: the host (ip, port) the apiserver listens on; default from api_client.
        extra_env: added to every container (before the pod's own env).
        """
        self.api = _Api(api_client)
        self.node_name = node_name
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.allocatable = dict(self.capacity)
        self.labels = labels or {}
        self.taints = taints or []
        self.network_mode, self.bridge, self.cidr = network, bridge, cidr
        self.extra_env = extra_env or {}
        self.image_entrypoints = image_entrypoints or {}
        self.max_grace_s = max_grace_s
        self.backoff = backoff
        self.cluster_domain = cluster_domain
        self.delete_node_on_stop = delete_node_on_stop
        self._own_root = root_dir is None
        self.root = Path(root_dir or tempfile.mkdtemp(prefix=f"kubelet-{node_name}-"))
        self.apiserver = apiserver or _apiserver_from(self.api.client.configuration.host)
        self.network: netns.PodNetwork | None = None
        self.kube_service: tuple[str, int] = self.apiserver
        self.stopping = False
        self._stop = threading.Event()
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._watch: Any = None
        self._tools = {
            t: shutil.which(t) or f"/usr/bin/{t}"
            for t in ("unshare", "sh", "mount", "hostname", "mkdir")
        }

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> TestKubelet:
        """Set up networking, register the Node, then start heartbeat, watch and DNS threads."""
        global _live_kubelets
        with _paths_lock:
            _live_kubelets += 1
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.network = netns.acquire_network(self.network_mode, self.bridge, self.cidr)
        self._expose_apiserver()
        self._register_node()
        self._renew_lease()
        for fn in (self._heartbeat_loop, self._watch_loop, self._dns_loop):
            t = threading.Thread(
                target=fn, name=f"kubelet-{self.node_name}-{fn.__name__}", daemon=True
            )
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Kill every pod process, delete the Node, free netns/bridge/proxies/mount targets."""
        global _live_kubelets
        if self.stopping:
            return
        self.stopping = True
        self._stop.set()
        resp = getattr(self._watch, "_resp", None)
        if resp is not None:  # unblock the watch thread's read
            with contextlib.suppress(Exception):
                resp.shutdown()
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.vanish()
        for w in workers:
            w.join(timeout=self.max_grace_s + 5)
        for t in self._threads:
            t.join(timeout=5)
        if self.delete_node_on_stop:
            self._delete_node()
        if self.network is not None:
            netns.release_network(self.network)
        with _paths_lock:
            _live_kubelets -= 1
            last = _live_kubelets == 0
        if last and not netns.other_runs_alive():
            _remove_created_paths()  # another run's pods may still have mounts on them
        self.api.close()

    def __enter__(self) -> TestKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- public helpers ----------------------------------------------------------------
    @property
    def node_ip(self) -> str:
        """The Node's InternalIP: the bridge address pods reach the host at."""
        return self.network.gateway if self.network else "127.0.0.1"

    def log_path(self, pod: Obj | str, container: str, namespace: str = "default") -> Path:
        """<root>/logs/<ns>_<pod>_<container>.log (restarts append to the same file)."""
        if isinstance(pod, dict):
            namespace, pod = pod["metadata"]["namespace"], pod["metadata"]["name"]
        return self.root / "logs" / f"{namespace}_{pod}_{container}.log"

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """A container's stdout+stderr; without container, all of the pod's, by container name."""
        if container is None:
            found = sorted((self.root / "logs").glob(f"{namespace}_{pod}_*.log"))
            if not found:
                raise FileNotFoundError(f"no logs for {namespace}/{pod} on {self.node_name}")
            return "".join(p.read_text(errors="replace") for p in found)
        return self.log_path(pod, container, namespace).read_text(errors="replace")

    def expose_host_port(self, port: int, target_host: str = "127.0.0.1") -> None:
        """Make a loopback-only host service reachable from pods at host.kubetrain.test:port."""
        assert self.network is not None
        self.network.expose((self.network.gateway, port), (target_host, port))

    # -- networking --------------------------------------------------------------------
    def _expose_apiserver(self) -> None:
        """Pods reach the apiserver at kubernetes.default.svc:443, forwarded to the host.

        A name rather than the Service IP 10.96.0.1: the name is in the serving
        cert of tests/harness/cluster.py, so in-cluster clients verify TLS, and
        it maps to this process's own bridge, so parallel test runs do not mix.
        """
        assert self.network is not None
        svc = (self.node_ip, 443)
        if self.network.expose(svc, self.apiserver):
            self.kube_service = (KUBERNETES_SERVICE_NAME, 443)

    def allocate_pod_network(self, worker: PodWorker) -> netns.PodNet:
        """A netns + IP for the pod, or the host network for hostNetwork pods."""
        assert self.network is not None
        if worker.pod["spec"].get("hostNetwork"):
            return netns.PodNet(ip=self.node_ip)
        return self.network.allocate(worker.key)

    def release_pod_network(self, worker: PodWorker) -> None:
        """Free the pod's netns (its IP stays in the status, as with a real kubelet)."""
        if worker.net is not None and worker.net.netns and self.network is not None:
            self.network.release(worker.net)

    def base_env(self, worker: PodWorker) -> dict[str, str]:
        """What every container starts with, like an image's env plus kubelet-injected vars."""
        host, port = self.kube_service
        spec = worker.pod["spec"]
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/root",
            "HOSTNAME": spec.get("hostname") or worker.pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "GRPC_DNS_RESOLVER": "native",  # gRPC (TF) then resolves through /etc/hosts
            **self.extra_env,
        }

    def spawn(
        self,
        worker: PodWorker,
        c: _Container,
        argv: list[str],
        env: dict[str, str],
        mounts: list[Mount],
    ) -> subprocess.Popen[bytes]:
        """Start a container process: [nsenter netns] unshare mount+uts, sh binds volumes, exec."""
        assert worker.net is not None
        etc = worker.hosts_path.parent
        binds = [Mount(etc / "hosts", "/etc/hosts")]
        if Path("/etc/resolv.conf").exists() and worker.net.netns:
            binds.append(Mount(etc / "resolv.conf", "/etc/resolv.conf"))
        binds += sorted(mounts, key=lambda m: m.target.rstrip("/").count("/"))
        for m in binds:
            _ensure_target(Path(m.target), m.source.is_dir())
        pod_dir = worker.dir / "work"
        workdir = c.spec.get("workingDir") or str(pod_dir)
        hostname = None if worker.pod["spec"].get("hostNetwork") else env["HOSTNAME"][:63]
        script = launch_script(binds, hostname, workdir, self._tools, IMAGE_PATHS)
        ns_flags = ["--mount", "--propagation", "private"] + (["--uts"] if hostname else [])
        cmd = [
            *worker.net.enter_prefix(),
            self._tools["unshare"],
            *ns_flags,
            "--",
            self._tools["sh"],
            "-c",
            script,
            f"kt-{c.name}",
            *argv,
        ]
        pod_dir.mkdir(parents=True, exist_ok=True)
        with worker._open_log(c) as fh:
            return subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=pod_dir,
                start_new_session=True,
            )

    # -- DNS ---------------------------------------------------------------------------
    def _extra_hosts(self) -> dict[str, str]:
        """host.kubetrain.test and the kubernetes Service names: all the bridge IP."""
        names = ["kubernetes.default", "kubernetes.default.svc"]
        names += [HOST_ALIAS, f"kubernetes.default.svc.{self.cluster_domain}"]
        return dict.fromkeys(names, self.node_ip)

    def refresh_hosts(
        self, worker: PodWorker, pods: list[Obj] | None = None, services: list[Obj] | None = None
    ) -> None:
        """Regenerate one pod's hosts file (in place, so running containers see it)."""
        if worker.net is None:
            return
        if pods is None or services is None:
            pods, services = self._cluster_names_input()
        ns = worker.pod["metadata"]["namespace"]
        entries = kubelet_dns.service_entries(pods, services, ns, self.cluster_domain)
        text = kubelet_dns.render_hosts(worker.pod, worker.net.ip, entries, self._extra_hosts())
        kubelet_dns.write_in_place(worker.hosts_path, text)

    def _cluster_names_input(self) -> tuple[list[Obj], list[Obj]]:
        pods = self.api.json(self.api.core.list_pod_for_all_namespaces)["items"]
        services = self.api.json(self.api.core.list_service_for_all_namespaces)["items"]
        return pods, services

    def _dns_loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                workers = [w for w in self._workers.values() if w.is_alive() and w.net]
            if not workers:
                continue
            try:
                pods, services = self._cluster_names_input()
                for w in workers:
                    self.refresh_hosts(w, pods, services)
            except Exception as exc:
                log.warning("kubelet %s: hosts refresh failed: %s", self.node_name, exc)

    # -- node & lease ------------------------------------------------------------------
    def _node_status(self) -> Obj:
        now = _now()
        conds = [
            ("Ready", "True", "KubeletReady"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]
        return {
            "capacity": self.capacity,
            "allocatable": self.allocatable,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for t, s, r in conds
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": os.uname().release,
                "osImage": "kubetrain test kubelet",
                "containerRuntimeVersion": "kubetrain://0.1",
                "kubeletVersion": "v1.35.4",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": labels},
            "spec": {"taints": self.taints},
        }
        try:
            self.api.json(self.api.core.create_node, body)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
            self.api.json(self.api.core.patch_node, self.node_name, body, _content_type=MERGE_PATCH)
        self._patch_node_status()

    def _patch_node_status(self) -> None:
        self.api.json(
            self.api.core.patch_node_status,
            self.node_name,
            {"status": self._node_status()},
            _content_type=MERGE_PATCH,
        )

    def _renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": 40,
            "renewTime": _micro_now(),
        }
        try:
            self.api.json(
                self.api.coord.patch_namespaced_lease,
                self.node_name,
                "kube-node-lease",
                {"spec": spec},
                _content_type=MERGE_PATCH,
            )
        except Exception as exc:
            if not _is_404(exc):
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                "spec": spec,
            }
            self.api.json(self.api.coord.create_namespaced_lease, "kube-node-lease", body)

    def _heartbeat_loop(self) -> None:
        """Lease every 5 s, node status every 20 s; re-register if the Node vanished."""
        ticks = 0
        while not self._stop.wait(5.0):
            ticks += 1
            try:
                self._renew_lease()
                if ticks % 4 == 0:
                    self._patch_node_status()
            except Exception as exc:
                if _is_404(exc):
                    with contextlib.suppress(Exception):
                        self._register_node()
                else:
                    log.warning("kubelet %s: heartbeat failed: %s", self.node_name, exc)

    def _delete_node(self) -> None:
        for fn, args in (
            (self.api.core.delete_node, (self.node_name,)),
            (self.api.coord.delete_namespaced_lease, (self.node_name, "kube-node-lease")),
        ):
            with contextlib.suppress(Exception):
                self.api.json(fn, *args)

    # -- pods --------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        """List (full resync), then watch from that version; on any error or timeout, again."""
        from kubernetes import watch

        selector = f"spec.nodeName={self.node_name}"
        while not self._stop.is_set():
            try:
                listing = self.api.json(
                    self.api.core.list_pod_for_all_namespaces, field_selector=selector
                )
                self._sync(listing["items"])
                w = self._watch = watch.Watch()
                stream = w.stream(
                    self.api.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                    deserialize=False,
                    _request_timeout=60,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    self._on_event(event["type"], event["object"])
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("kubelet %s: pod watch failed (%s); relisting", self.node_name, exc)
                    self._stop.wait(1.0)

    def _on_event(self, kind: str, pod: Obj) -> None:
        if kind == "DELETED":
            with self._lock:
                worker = self._workers.pop(pod["metadata"]["uid"], None)
            if worker is not None:
                worker.vanish()
        elif kind in ("ADDED", "MODIFIED"):
            self._on_pod(pod)

    def _sync(self, pods: list[Obj]) -> None:
        """Reconcile against a full listing: start new pods, drop vanished ones."""
        uids = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            gone = [w for uid, w in self._workers.items() if uid not in uids]
            for w in gone:
                del self._workers[w.uid]
        for w in gone:
            w.vanish()
        for pod in pods:
            self._on_pod(pod)

    def _on_pod(self, pod: Obj) -> None:
        """One bad pod must never kill the watch thread, hence the broad except."""
        try:
            self._handle_pod(pod)
        except Exception:
            log.exception(
                "kubelet %s: handling pod %s failed", self.node_name, pod["metadata"].get("name")
            )

    def _handle_pod(self, pod: Obj) -> None:
        if self.stopping:
            return
        uid = pod["metadata"]["uid"]
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        with self._lock:
            worker = self._workers.get(uid)
            if (
                worker is None
                and not deleting
                and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            ):
                worker = self._workers[uid] = PodWorker(self, pod)
                worker.start()
                return
        if worker is not None and worker.is_alive():
            worker.update(pod)
        elif deleting:
            self.delete_pod_now(pod)

    def delete_pod_now(self, pod: Obj) -> None:
        """Final delete with grace 0 once the processes are gone (uid-guarded)."""
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.api.json(
                self.api.core.delete_namespaced_pod, meta["name"], meta["namespace"], body=body
            )
        except Exception as exc:
            if getattr(exc, "status", None) not in (404, 409):
                log.warning("kubelet %s: delete %s failed: %s", self.node_name, meta["name"], exc)


def _apiserver_from(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 443


class KubeletPool:
    """Several test kubelets sharing one pod network; stops them all on close()."""

    def __init__(
        self, api_client_factory: Callable[[], ApiClient], root: Path, **defaults: Any
    ) -> None:
        self._api = api_client_factory
        self.root = root
        self.defaults = defaults
        self.kubelets: dict[str, TestKubelet] = {}

    def start(
        self, node_name: str, capacity: dict[str, str] | None = None, **kw: Any
    ) -> TestKubelet:
        """Start (and register) a kubelet for node_name with the given capacity."""
        opts = {**self.defaults, **kw}
        k = TestKubelet(self._api(), node_name, capacity, root_dir=self.root / node_name, **opts)
        self.kubelets[node_name] = k.start()
        return k

    def ensure(
        self, node_name: str, capacity: dict[str, str] | None = None, **kw: Any
    ) -> TestKubelet:
        """The running kubelet for node_name, started if there is none."""
        if node_name in self.kubelets:
            return self.kubelets[node_name]
        return self.start(node_name, capacity, **kw)

    def stop(self, node_name: str) -> None:
        """Stop one kubelet (its Node is deleted)."""
        self.kubelets.pop(node_name).stop()

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """A pod's container logs from whichever kubelet ran it."""
        for k in self.kubelets.values():
            with contextlib.suppress(FileNotFoundError):
                return k.logs(namespace, pod, container)
        raise FileNotFoundError(f"no logs for {namespace}/{pod} on any test kubelet")

    def close(self) -> None:
        for name in list(self.kubelets):
            self.stop(name)


@contextlib.contextmanager
def kubelet_pool(cluster: Cluster, root: Path, **defaults: Any) -> Iterator[KubeletPool]:
    """A KubeletPool on cluster, closed (all kubelets stopped) on exit."""
    pool = KubeletPool(cluster.api_client, root, **defaults)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def kubelets(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletPool]:
    """All test kubelets of the session; start more with kubelets.start(name, capacity)."""
    with kubelet_pool(cluster, tmp_path_factory.mktemp("kubelets")) as pool:
        yield pool


@pytest.fixture(scope="session")
def kubelet(kubelets: KubeletPool) -> TestKubelet:
    """The default node kt-node-0: DEFAULT_CAPACITY, no accelerators."""
    return kubelets.ensure(DEFAULT_NODE)
