"""Render the chart and read the manifests: helpers of the install tests."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.cluster import find_tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubetrain"
MANIFESTS = REPO / "manifests"
HERE = Path(__file__).resolve().parent

#: Names of the values files next to this module, each a supported way to install.
VALUES_FILES = ("values-namespaced.yaml", "values-servicemonitor.yaml", "values-resources.yaml")
#: The labels every object of the chart carries.
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
#: Resources in manifests/rbac.yaml that only a ClusterRole can grant.
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces"}


@functools.cache
def helm_bin() -> Path:
    """helm, built once by hack/cluster-tools.sh (instant when cached)."""
    return find_tools(["helm"]) / "helm"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm (no check: callers look at the exit code and stderr)."""
    return subprocess.run(
        [str(helm_bin()), *args], capture_output=True, text=True, timeout=120, check=False
    )


class RenderError(Exception):
    """`helm template` failed; the message is helm's stderr."""


@dataclass(frozen=True)
class Rendered:
    """One rendered object and the template file it came from."""

    source: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])


@functools.cache
def render(
    *values_files: str,
    release: str = "kubetrain",
    namespace: str = "kubetrain-system",
    sets: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> tuple[Rendered, ...]:
    """`helm template` the chart with values files from tests/install; raise RenderError."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for name in values_files:
        args += ["--values", str(HERE / name)]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args, *extra)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    out = []
    for doc in proc.stdout.split("\n---\n"):
        obj = yaml.safe_load(doc)
        if obj:
            source = next(
                line.split(":", 1)[1].strip()
                for line in doc.splitlines()
                if line.startswith("# Source:")
            )
            out.append(Rendered(source, obj))
    return tuple(out)


def objects(rendered: tuple[Rendered, ...], kind: str) -> list[dict[str, Any]]:
    """The rendered objects of one kind."""
    return [r.obj for r in rendered if r.kind == kind]


def one(rendered: tuple[Rendered, ...] | list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of `kind`; fail when there are none or several."""
    objs = [
        r.obj if isinstance(r, Rendered) else r
        for r in rendered
        if (r.kind if isinstance(r, Rendered) else r["kind"]) == kind
    ]
    assert len(objs) == 1, f"expected one {kind}, got {len(objs)}"
    return objs[0]


def load_manifest(name: str) -> list[dict[str, Any]]:
    """The objects of manifests/<name>."""
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The operator container of a Deployment (the only one)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


#: The pod name `env` gives fieldRef metadata.name (the ReplicaSet adds a suffix).
POD_NAME = "operator-pod"


def field_refs(deployment: dict[str, Any]) -> dict[str, str]:
    """The operator container's variables set from the downward API: name -> fieldPath."""
    return {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container(deployment).get("env", [])
        if "fieldRef" in e.get("valueFrom", {})
    }


def env(deployment: dict[str, Any]) -> dict[str, str]:
    """The operator container's environment as the process sees it.

    Downward-API variables resolve as the kubelet would: metadata.namespace to
    the Deployment's namespace, metadata.name to POD_NAME. Any other valueFrom
    fails: the operator's configuration is literal values and these two.
    """
    pod = {"metadata.namespace": deployment["metadata"].get("namespace"), "metadata.name": POD_NAME}
    out = {}
    for e in container(deployment).get("env", []):
        if "valueFrom" in e:
            out[e["name"]] = pod[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            out[e["name"]] = e.get("value", "")
    return out


def effective_security(deployment: dict[str, Any]) -> dict[str, Any]:
    """The security settings the container runs with: its own over the pod's."""
    pod = deployment["spec"]["template"]["spec"].get("securityContext", {})
    return {**pod, **container(deployment).get("securityContext", {})}


def port_number(deployment: dict[str, Any], port: int | str) -> int:
    """Resolve a probe or Service port (a number or a container port name)."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    return int(ports[port])


def assert_secure(deployment: dict[str, Any]) -> None:
    """The operator pod runs locked down, with a writable emptyDir at /tmp."""
    sc = effective_security(deployment)
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 1000
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged")
    spec = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert not mounts["/tmp"].get("readOnly")
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert not spec.get("hostNetwork") and not spec.get("hostPID")


def assert_probes(deployment: dict[str, Any]) -> None:
    """Liveness and readiness ask kopf's /healthz on port 8081."""
    c = container(deployment)
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert port_number(deployment, get["port"]) == 8081, probe
    assert env(deployment)["KUBETRAIN_HEALTH_ADDRESS"] == "http://0.0.0.0:8081/healthz"
