"""Pod networking for the test kubelet: one network namespace per pod on a host bridge.

Every pod gets its own netns with a veth into a bridge of this test process
(``kt-<pid>``, a free 10.X.0.1/16), so all pods can bind the same port (TF binds 0.0.0.0:2222) and
reach each other by IP. Host services are reachable at the bridge IP, but only
if they listen on 0.0.0.0 or on that IP (not on 127.0.0.1).

When namespaces cannot be made (not root, no ``ip``), :class:`HostNetwork`
runs pods in the host netns at 127.0.0.1: ports then collide between pods.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.harness.portproxy import PortProxy

log = logging.getLogger(__name__)

NETNS_PREFIX = "ktp-"
VETH_PREFIX = "ktv"


class NetworkError(RuntimeError):
    """A pod network could not be set up."""


@dataclass(frozen=True)
class PodNet:
    """Where a pod's processes run: netns None means the host network."""

    ip: str
    netns: str | None = None
    veth: str | None = None

    def enter_prefix(self) -> list[str]:
        """Argv prefix that runs a command inside this pod's network namespace."""
        if self.netns is None:
            return []
        nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
        return [nsenter, f"--net=/run/netns/{self.netns}", "--"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_supported() -> tuple[bool, str]:
    """Probe once whether this host lets us create netns + veth; say why not."""
    if os.geteuid() != 0:
        return False, "not root: network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found (install iproute2/util-linux)"
    name = f"{NETNS_PREFIX}{os.getpid()}-probe"
    veth = f"{VETH_PREFIX}p{os.getpid() % 100000}"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        return True, ""
    except subprocess.CalledProcessError as exc:
        return False, f"ip {' '.join(exc.cmd[1:])}: {exc.stderr.strip()}"
    finally:
        _ip("link", "del", veth, check=False)
        _ip("netns", "del", name, check=False)


class HostNetwork:
    """Fallback: every pod shares the host network at 127.0.0.1."""

    gateway = "127.0.0.1"

    def setup(self) -> None:
        """Nothing to create."""

    def teardown(self) -> None:
        """Nothing to remove."""

    def allocate(self, pod_key: str) -> PodNet:
        """All pods get the loopback address."""
        return PodNet(ip="127.0.0.1")

    def release(self, net: PodNet) -> None:
        """Nothing to free."""

    def expose(self, listen: tuple[str, int], target: tuple[str, int]) -> bool:
        """Pods share the host loopback: nothing to forward."""
        return False


class BridgeNetwork:
    """A host bridge plus an IP pool; each pod gets a netns and a veth on the bridge.

    Names carry our pid (bridge ``kt-<pid>``, netns ``ktp-<pid>-<id>``) and the
    subnet is a free 10.X.0.0/16, so test runs in parallel on one machine do
    not collide; leftovers of runs whose pid is dead are removed at setup.
    """

    def __init__(self, bridge: str | None = None, cidr: str | None = None) -> None:
        self.bridge = bridge or f"kt-{os.getpid()}"[:15]
        self.netns_prefix = f"{NETNS_PREFIX}{os.getpid()}-"
        self.iface = ipaddress.ip_interface(cidr or _free_cidr())
        self.gateway = str(self.iface.ip)
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._hosts = self.iface.network.hosts()
        self._proxies: dict[tuple[str, int], PortProxy] = {}

    def setup(self) -> None:
        """Create the bridge, removing leftovers of crashed runs first."""
        _remove_dead_runs()
        _ip("link", "del", self.bridge, check=False)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", str(self.iface), "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def teardown(self) -> None:
        """Close forwarders, delete our pod netns (their veths go with them) and the bridge."""
        with self._lock:
            self._used.clear()
            proxies, self._proxies = list(self._proxies.values()), {}
        for proxy in proxies:
            proxy.close()
        for name in _list_netns():
            if name.startswith(self.netns_prefix):
                _ip("netns", "del", name, check=False)
        _ip("link", "del", self.bridge, check=False)

    def expose(self, listen: tuple[str, int], target: tuple[str, int]) -> bool:
        """Forward listen (an address on the bridge, added if needed) to a host target.

        Idempotent; returns False if something else already listens there (then
        pods reach that service directly).
        """
        with self._lock:
            if listen in self._proxies:
                return True
            if listen[0] != self.gateway:
                _ip("addr", "replace", f"{listen[0]}/32", "dev", self.bridge)
            try:
                self._proxies[listen] = PortProxy(listen, target)
            except OSError as exc:
                log.info("not forwarding %s -> %s: %s", listen, target, exc)
                return False
            return True

    def _next_ip(self) -> str:
        with self._lock:
            for _ in range(self.iface.network.num_addresses):
                try:
                    addr = str(next(self._hosts))
                except StopIteration:
                    self._hosts = self.iface.network.hosts()
                    continue
                if addr != self.gateway and addr not in self._used:
                    self._used.add(addr)
                    return addr
        raise NetworkError(f"no free address in {self.iface.network}")

    def allocate(self, pod_key: str) -> PodNet:
        """Make a netns with eth0 on the bridge and lo up; default route via the bridge."""
        suffix = uuid.uuid4().hex[:10]
        net = PodNet(
            ip=self._next_ip(), netns=self.netns_prefix + suffix, veth=VETH_PREFIX + suffix
        )
        assert net.netns and net.veth
        try:
            _ip("netns", "add", net.netns)
            _ip("link", "add", net.veth, "type", "veth", "peer", "name", "eth0", "netns", net.netns)
            _ip("link", "set", net.veth, "master", self.bridge)
            _ip("link", "set", net.veth, "up")
            prefix = self.iface.network.prefixlen
            _ip("-n", net.netns, "addr", "add", f"{net.ip}/{prefix}", "dev", "eth0")
            _ip("-n", net.netns, "link", "set", "eth0", "up")
            _ip("-n", net.netns, "link", "set", "lo", "up")
            _ip("-n", net.netns, "route", "add", "default", "via", self.gateway)
        except subprocess.CalledProcessError as exc:
            self.release(net)
            raise NetworkError(f"pod network for {pod_key}: {exc.stderr.strip()}") from exc
        log.debug("pod %s: netns %s ip %s", pod_key, net.netns, net.ip)
        return net

    def release(self, net: PodNet) -> None:
        """Delete the pod's netns and veth and free its IP."""
        if net.veth:
            _ip("link", "del", net.veth, check=False)
        if net.netns:
            _ip("netns", "del", net.netns, check=False)
        with self._lock:
            self._used.discard(net.ip)


def _pid_alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def _remove_dead_runs() -> None:
    """Delete bridges kt-<pid> and netns ktp-<pid>-* whose pid no longer runs."""
    for name in _list_netns():
        if name.startswith(NETNS_PREFIX):
            pid = name[len(NETNS_PREFIX) :].split("-")[0]
            if not _pid_alive(pid):
                _ip("netns", "del", name, check=False)
    for dev in _links():
        if dev.startswith("kt-") and not _pid_alive(dev[3:]):
            _ip("link", "del", dev, check=False)


def other_runs_alive() -> bool:
    """Whether another live process has a pod bridge here (a parallel test run)."""
    me = f"kt-{os.getpid()}"
    return any(d.startswith("kt-") and d != me and _pid_alive(d[3:]) for d in _links())


def _links() -> list[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def _free_cidr() -> str:
    """The first 10.X.0.1/16 (X in 200..254) that no interface here uses yet."""
    used = _ip("-o", "addr", "show", check=False).stdout
    for x in range(200, 255):
        if f" 10.{x}." not in used:
            return f"10.{x}.0.1/16"
    raise NetworkError("no free 10.X.0.0/16 subnet for the pod bridge")


def _list_netns() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


PodNetwork = BridgeNetwork | HostNetwork

_shared_lock = threading.Lock()
_shared: dict[str, tuple[PodNetwork, int]] = {}


def acquire_network(
    mode: str = "auto", bridge: str | None = None, cidr: str | None = None
) -> PodNetwork:
    """Return the process-wide pod network (shared so pods of all kubelets see each other).

    mode: "netns" (fail if unsupported), "host", or "auto" (netns, else host).
    """
    key = f"{mode}:{bridge}:{cidr}"
    with _shared_lock:
        if key in _shared:
            net, refs = _shared[key]
            _shared[key] = (net, refs + 1)
            return net
        net = _make_network(mode, bridge, cidr)
        net.setup()
        _shared[key] = (net, 1)
        return net


def release_network(net: PodNetwork) -> None:
    """Drop one reference; the last one tears the bridge down."""
    with _shared_lock:
        for key, (held, refs) in list(_shared.items()):
            if held is net:
                if refs > 1:
                    _shared[key] = (held, refs - 1)
                    return
                del _shared[key]
                held.teardown()
                return


def _make_network(mode: str, bridge: str | None, cidr: str | None) -> PodNetwork:
    if mode == "host":
        return HostNetwork()
    ok, why = netns_supported()
    if ok:
        return BridgeNetwork(bridge, cidr)
    if mode == "netns":
        raise NetworkError(f"network namespaces unavailable: {why}")
    log.warning("network namespaces unavailable (%s): pods use the host network", why)
    return HostNetwork()
