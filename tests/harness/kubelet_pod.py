"""Turning a pod spec into what a local process needs: env, volume dirs, argv.

Kept apart from the kubelet loop so the spec logic reads like the Kubernetes
rules it mimics. Objects are plain JSON dicts (camelCase), as the API sends them.
"""

from __future__ import annotations

import base64
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


class PodSpecError(Exception):
    """The pod cannot run (yet); reason is a Kubernetes-style waiting reason."""

    def __init__(self, reason: str, message: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retriable = retriable


@dataclass
class ApiSource:
    """What the spec logic reads from the API; callables so tests can fake them."""

    read_config_map: Callable[[str, str], Obj | None]
    read_secret: Callable[[str, str], Obj | None]
    request_token: Callable[[str, str, Obj], str]
    ca_cert_fallback: Callable[[], str | None]


# --- field references -------------------------------------------------------

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def field_value(pod: Obj, path: str) -> str:
    """Value of a fieldRef fieldPath, as the kubelet's downward API gives it."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if m := _SUBSCRIPT.match(path):
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise PodSpecError("CreateContainerConfigError", f"unsupported fieldPath {path!r}", False)


_SUFFIX: dict[str, Decimal | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(q: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "2Gi") as a Decimal."""
    s = str(q)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if s.endswith(suffix):
            return Decimal(s[: -len(suffix)]) * Decimal(_SUFFIX[suffix])
    return Decimal(s)


def resource_value(pod: Obj, ref: Obj, default_container: str | None, node_alloc: Obj) -> str:
    """resourceFieldRef: the container's limit/request, node allocatable if unset, ceil'd."""
    name = ref.get("containerName") or default_container
    container: Obj = next((c for c in pod["spec"]["containers"] if c["name"] == name), {})
    kind, _, res = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(res)
    if value is None:
        value = node_alloc.get(res, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


# --- env ----------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known vars replaced, $$ escapes, unknown kept."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(repl, text)


def _decoded(secret: Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _key_ref(api: ApiSource, ns: str, ref: Obj, secret: bool) -> str | None:
    obj = (api.read_secret if secret else api.read_config_map)(ns, ref["name"])
    data = (_decoded(obj) if secret else obj.get("data") or {}) if obj else None
    kind = "secret" if secret else "configmap"
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        what = f"{kind} {ns}/{ref['name']}" + ("" if data is None else f" key {ref['key']!r}")
        raise PodSpecError("CreateContainerConfigError", f"{what} not found")
    return data[ref["key"]]


def _env_from(api: ApiSource, ns: str, sources: list[Obj]) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in sources:
        prefix = src.get("prefix", "")
        for kind, secret in (("configMapRef", False), ("secretRef", True)):
            if kind not in src:
                continue
            ref = src[kind]
            obj = (api.read_secret if secret else api.read_config_map)(ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise PodSpecError(
                    "CreateContainerConfigError", f"{kind} {ns}/{ref['name']} not found"
                )
            data = _decoded(obj) if secret else obj.get("data") or {}
            env.update({prefix + k: v for k, v in data.items()})
    return env


def container_env(
    pod: Obj, container: Obj, api: ApiSource, base: dict[str, str], node_alloc: Obj
) -> dict[str, str]:
    """The process environment: base, then envFrom, then env in order with $(VAR) expansion."""
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    env.update(_env_from(api, ns, container.get("envFrom") or []))
    for var in container.get("env") or []:
        value = _env_value(pod, container, var, api, env, node_alloc)
        if value is not None:
            env[var["name"]] = value
    return env


def _env_value(
    pod: Obj, container: Obj, var: Obj, api: ApiSource, env: dict[str, str], node_alloc: Obj
) -> str | None:
    src = var.get("valueFrom")
    if src is None:
        return expand(var.get("value", ""), env)
    ns = pod["metadata"]["namespace"]
    if "fieldRef" in src:
        return field_value(pod, src["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in src:
        return resource_value(pod, src["resourceFieldRef"], container["name"], node_alloc)
    if "configMapKeyRef" in src:
        return _key_ref(api, ns, src["configMapKeyRef"], secret=False)
    if "secretKeyRef" in src:
        return _key_ref(api, ns, src["secretKeyRef"], secret=True)
    raise PodSpecError(
        "CreateContainerConfigError", f"unsupported valueFrom in env {var['name']}", False
    )


def container_argv(
    container: Obj, env: dict[str, str], entrypoints: dict[str, list[str]]
) -> list[str]:
    """command + args with $(VAR) expansion; an image entrypoint only if configured."""
    command = container.get("command") or entrypoints.get(container.get("image", ""))
    if not command:
        raise PodSpecError(
            "ContainerCannotRun",
            f"container {container['name']!r} has no command: the test kubelet runs no images, "
            f"so the image entrypoint of {container.get('image')!r} cannot be used",
            retriable=False,
        )
    return [expand(a, env) for a in [*command, *(container.get("args") or [])]]


# --- volumes ------------------------------------------------------------------


def _write(root: Path, rel: str, content: str | bytes, mode: int | None) -> None:
    path = root / rel
    if root.resolve() not in path.resolve().parents:
        raise PodSpecError(
            "CreateContainerConfigError", f"volume path {rel!r} escapes the volume", False
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o644 if mode is None else mode)


def _key_files(root: Path, data: dict[str, bytes], src: Obj, what: str) -> None:
    """Write data as files: every key, or only the listed items (key -> path)."""
    mode = src.get("defaultMode")
    items = src.get("items")
    if not items:
        for key, value in data.items():
            _write(root, key, value, mode)
        return
    for item in items:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise PodSpecError("ContainerCreating", f"{what}: key {item['key']!r} not found")
        _write(root, item["path"], data[item["key"]], item.get("mode", mode))


def _config_map_files(api: ApiSource, ns: str, src: Obj) -> dict[str, bytes] | None:
    obj = api.read_config_map(ns, src["name"])
    if obj is None and src["name"] == "kube-root-ca.crt":
        ca = api.ca_cert_fallback()
        obj = {"data": {"ca.crt": ca}} if ca else None
    if obj is None:
        return None
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _secret_files(api: ApiSource, ns: str, src: Obj) -> dict[str, bytes] | None:
    obj = api.read_secret(ns, src.get("secretName") or src["name"])
    if obj is None:
        return None
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _source_files(api: ApiSource, pod: Obj, root: Path, kind: str, src: Obj) -> None:
    ns = pod["metadata"]["namespace"]
    name = src.get("name") or src.get("secretName")
    reader = _config_map_files if kind == "configMap" else _secret_files
    data = reader(api, ns, src)
    if data is None:
        if src.get("optional"):
            return
        raise PodSpecError("ContainerCreating", f"{kind} {ns}/{name} not found (volume not ready)")
    _key_files(root, data, src, f"{kind} {ns}/{name}")


def _downward_files(pod: Obj, root: Path, src: Obj, node_alloc: Obj) -> None:
    for item in src.get("items") or []:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            value = resource_value(pod, item["resourceFieldRef"], None, node_alloc)
        _write(root, item["path"], value, item.get("mode", src.get("defaultMode")))


def _projected(api: ApiSource, pod: Obj, root: Path, vol: Obj, node_alloc: Obj) -> None:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    for src in vol.get("sources") or []:
        if "serviceAccountToken" in src:
            tok = src["serviceAccountToken"]
            body = {
                "spec": {
                    "audiences": [tok["audience"]] if tok.get("audience") else [],
                    "expirationSeconds": tok.get("expirationSeconds", 3600),
                    "boundObjectRef": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                }
            }
            sa = spec.get("serviceAccountName") or "default"
            _write(
                root,
                tok["path"],
                api.request_token(meta["namespace"], sa, body),
                vol.get("defaultMode"),
            )
        elif "configMap" in src or "secret" in src:
            kind = "configMap" if "configMap" in src else "secret"
            _source_files(
                api, pod, root, kind, {"defaultMode": vol.get("defaultMode"), **src[kind]}
            )
        elif "downwardAPI" in src:
            _downward_files(
                pod, root, {"defaultMode": vol.get("defaultMode"), **src["downwardAPI"]}, node_alloc
            )
        else:
            raise PodSpecError(
                "UnsupportedVolume", f"unsupported projected source {sorted(src)}", False
            )


def prepare_volume(api: ApiSource, pod: Obj, vol: Obj, root: Path, node_alloc: Obj) -> Path:
    """Materialize one pod volume as a host directory (or hostPath) and return it."""
    if "hostPath" in vol:
        path = Path(vol["hostPath"]["path"])
        if vol["hostPath"].get("type") in ("DirectoryOrCreate", "", None):
            path.mkdir(parents=True, exist_ok=True)
        return path
    root.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in vol:
        return root
    if "configMap" in vol or "secret" in vol:
        kind = "configMap" if "configMap" in vol else "secret"
        _source_files(api, pod, root, kind, vol[kind])
    elif "downwardAPI" in vol:
        _downward_files(pod, root, vol["downwardAPI"], node_alloc)
    elif "projected" in vol:
        _projected(api, pod, root, vol["projected"], node_alloc)
    else:
        kinds = sorted(k for k in vol if k != "name")
        raise PodSpecError(
            "UnsupportedVolume", f"volume {vol['name']!r}: unsupported type {kinds}", False
        )
    return root


# --- the launch script --------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A bind mount inside the container's mount namespace."""

    source: Path
    target: str
    read_only: bool = False


def container_mounts(container: Obj, volumes: dict[str, Path]) -> list[Mount]:
    """volumeMounts resolved to host sources (subPath included)."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            raise PodSpecError(
                "CreateContainerConfigError", f"volumeMount of unknown volume {vm['name']!r}", False
            )
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
    return mounts


#: Directories that may hold the staging tmpfs; the first one no mount touches wins.
STAGING_CANDIDATES = ("/mnt", "/media", "/srv", "/opt")


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _staging_dir(targets: list[str]) -> str:
    for candidate in STAGING_CANDIDATES:
        if Path(candidate).is_dir() and not any(_overlaps(candidate, t) for t in targets):
            return candidate
    raise PodSpecError(f"no staging directory free of the pod's mounts among {STAGING_CANDIDATES}")


def launch_script(
    mounts: list[Mount],
    hostname: str | None,
    workdir: str,
    tools: dict[str, str],
    image_paths: tuple[str, ...] = (),
) -> str:
    """sh script run in the new mount/UTS namespace: mounts, hostname, cd, exec "$@".

    Every source is first bound into a private tmpfs, then mounted onto its
    target: a volume mounted at /tmp would otherwise hide the sources (and
    the "image", i.e. this machine's virtualenv and checkout) that live
    under /tmp. Image paths that a volume shadows are bound back on top.
    """
    q = shlex.quote
    mount, mkdir = q(tools["mount"]), q(tools["mkdir"])
    targets = [m.target for m in mounts]
    stage = _staging_dir(targets)
    lines = ["set -e", f"{mount} -t tmpfs kt-stage {q(stage)}"]
    if hostname:
        lines.append(f"{q(tools['hostname'])} {q(hostname)}")
    for i, m in enumerate(mounts):
        staged = q(f"{stage}/v{i}")
        lines.append(f"{mkdir} {staged}" if m.source.is_dir() else f": > {staged}")
        lines.append(f"{mount} --bind {q(str(m.source))} {staged}")
    shadowed = [p for p in image_paths if any(_overlaps(p, t) for t in targets)]
    for i, path in enumerate(shadowed):
        lines.append(f"{mkdir} {q(f'{stage}/i{i}')}")
        lines.append(f"{mount} --bind {q(path)} {q(f'{stage}/i{i}')}")
    for i, m in enumerate(mounts):
        target = q(m.target)
        if m.source.is_dir():
            lines.append(f"{mkdir} -p {target}")
        else:  # a file target may sit inside an earlier mount: create it there too
            lines.append(f"[ -e {target} ] || : > {target}")
        lines.append(f"{mount} --bind {q(f'{stage}/v{i}')} {target}")
        if m.read_only:
            lines.append(f"{mount} -o remount,bind,ro {target}")
    for i, path in enumerate(shadowed):
        lines.append(f"{mkdir} -p {q(path)}")
        lines.append(f"{mount} --bind {q(f'{stage}/i{i}')} {q(path)}")
    lines.append(f"{mkdir} -p {q(workdir)}")
    lines.append(f"cd {q(workdir)}")
    lines.append('exec "$@"')
    return "\n".join(lines)
