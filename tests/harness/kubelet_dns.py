"""Per-pod /etc/hosts for the test kubelet: the stand-in for cluster DNS.

Each pod gets its own hosts file, bind-mounted over /etc/hosts in its mount
namespace. Names come from Services with a selector (headless or not: there is
no kube-proxy, so a Service name always resolves to the matching pods' IPs)
and from pod hostname/subdomain. The file is rewritten in place (same inode)
because a bind-mounted file only shows writes into the inode it was bound to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Obj = dict[str, Any]


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _alive_ip(pod: Obj) -> str | None:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    return status.get("podIP")


def _names(base: str, ns: str, own_ns: str, domain: str) -> list[str]:
    """All spellings of <base> in namespace ns, short ones only for the pod's own namespace."""
    names = [f"{base}.{ns}.svc.{domain}", f"{base}.{ns}.svc", f"{base}.{ns}"]
    if ns == own_ns:
        names.append(base)
    return names


def service_entries(
    pods: list[Obj], services: list[Obj], own_ns: str, domain: str
) -> list[tuple[str, str]]:
    """(ip, name) pairs for every Service with a selector and its matching live pods."""
    entries: list[tuple[str, str]] = []
    by_ns: dict[str, list[Obj]] = {}
    for pod in pods:
        by_ns.setdefault(pod["metadata"]["namespace"], []).append(pod)
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = (svc.get("spec") or {}).get("selector") or {}
        for pod in sorted(by_ns.get(ns, []), key=lambda p: p["metadata"]["name"]):
            ip = _alive_ip(pod)
            if ip is None or not _labels_match(selector, pod["metadata"].get("labels") or {}):
                continue
            entries += [(ip, n) for n in _names(name, ns, own_ns, domain)]
            spec = pod.get("spec") or {}
            if spec.get("subdomain") == name and spec.get("hostname"):
                entries += [
                    (ip, n) for n in _names(f"{spec['hostname']}.{name}", ns, own_ns, domain)
                ]
    return entries


def render_hosts(
    pod: Obj, pod_ip: str, entries: list[tuple[str, str]], extra: dict[str, str]
) -> str:
    """The whole hosts file of one pod: itself, extra names, then service names."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    hostname = spec.get("hostname") or meta["name"]
    lines = ["# Kubernetes-managed hosts file (kubetrain test kubelet).", "127.0.0.1\tlocalhost"]
    lines.append("::1\tlocalhost ip6-localhost ip6-loopback")
    if pod_ip != "127.0.0.1":
        lines.append(f"{pod_ip}\t{hostname}")
    lines += [f"{ip}\t{name}" for name, ip in sorted(extra.items())]
    seen: set[tuple[str, str]] = set()
    for ip, name in entries:
        if (ip, name) not in seen:
            seen.add((ip, name))
            lines.append(f"{ip}\t{name}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, content: str) -> bool:
    """Rewrite path keeping its inode (so bind mounts see it); return whether it changed."""
    data = content.encode()
    if not path.exists():
        path.write_bytes(data)
        return True
    with path.open("r+b") as f:
        if f.read() == data:
            return False
        f.seek(0)
        f.write(data)
        f.truncate()
    return True
