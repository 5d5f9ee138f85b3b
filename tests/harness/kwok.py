"""Fake nodes for scale tests: the real ``kwok`` binary against the test apiserver.

kwok (sigs.k8s.io/kwok, built by hack/cluster-tools.sh) plays kubelet for the
Nodes it manages: it keeps them Ready (leases), and for pods the real
kube-scheduler binds to them it writes a Running status with a pod IP, and
finishes their deletion. No process runs, so hundreds of replicas cost only
API traffic.

Only Nodes annotated ``kwok.x-k8s.io/node=fake`` are managed. They carry the
taint ``kwok.x-k8s.io/node=fake:NoSchedule`` and the label ``type=kwok``, so a
pod lands there only if it opts in with :data:`TOLERATIONS` and
:data:`NODE_SELECTOR` (a TrainingJob replica spec takes both as they are)::

    with start_kwok(cluster, workdir, nodes=4) as kwok:
        ...  # pods tolerating the taint and selecting type=kwok run "Running"

Pod IPs come from a loopback CIDR (127.64.0.0/10), so anything that dials a
fake pod (the operator's progress poll) stays on this machine and is refused
at once. Fixtures: ``kwok_nodes`` (module scope, :data:`DEFAULT_NODES` nodes).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.harness.cluster import die_with_parent, stop_process_group

if TYPE_CHECKING:
    from tests.harness.cluster import Cluster

__all__ = [
    "ANNOTATION",
    "DEFAULT_NODES",
    "NODE_SELECTOR",
    "TOLERATIONS",
    "Kwok",
    "kwok_nodes",
    "start_kwok",
]

ANNOTATION = "kwok.x-k8s.io/node"
TAINT = {"key": ANNOTATION, "value": "fake", "effect": "NoSchedule"}
#: What a pod (or a TrainingJob replica spec) needs to be placed on a kwok node.
NODE_SELECTOR = {"type": "kwok"}
TOLERATIONS = [{"key": ANNOTATION, "operator": "Exists", "effect": "NoSchedule"}]
#: Pod IPs: loopback, so nothing that dials them leaves this machine.
POD_CIDR = "127.64.0.1/10"
DEFAULT_NODES = 8
DEFAULT_CAPACITY = {"cpu": "1000", "memory": "4Ti", "pods": "1024", "ephemeral-storage": "10Ti"}
NODE_PREFIX = "kwok-node-"


def _config(pod_parallelism: int) -> str:
    """KwokConfiguration: default stages (pods go Running and stay there unless a
    batch Job owns them), more status writers than kwok's default 4."""
    return json.dumps(
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "podPlayStageParallelism": pod_parallelism,
                "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4,
                "enableDebuggingHandlers": False,
            },
        }
    )


def node_manifest(name: str, capacity: dict[str, str]) -> dict[str, Any]:
    """A fake Node that kwok will manage (status is kept on create)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                **NODE_SELECTOR,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
            },
        },
        "spec": {"taints": [TAINT]},
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }


@dataclass
class Kwok:
    """A running kwok process and the fake Nodes it manages."""

    cluster: Cluster
    popen: subprocess.Popen[bytes]
    log: Path
    nodes: list[str] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"kwok exited with {code}; log {self.log}:\n{self.tail()}")

    def ready_nodes(self) -> list[str]:
        """Names of this kwok's nodes whose Ready condition is True."""
        out = self.cluster.kubectl("get", "nodes", "-l", "type=kwok", "-o", "json").stdout
        ready = []
        for node in json.loads(out)["items"]:
            conds = (node.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                ready.append(node["metadata"]["name"])
        return sorted(n for n in ready if n in self.nodes)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ready_nodes()) < len(self.nodes):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"kwok nodes not Ready after {timeout}s: "
                    f"{self.ready_nodes()} of {self.nodes}\n{self.tail()}"
                )
            time.sleep(0.5)

    def stop(self, grace: float = 10.0) -> None:
        """Delete the fake Nodes (pods left on them are garbage-collected by the
        controller-manager), then stop kwok."""
        if self.nodes:
            self.cluster.kubectl(
                "delete", "node", *self.nodes, "--ignore-not-found", "--wait=false", check=False
            )
            self.nodes = []
        stop_process_group(self.popen, grace)

    def __enter__(self) -> Kwok:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_kwok(
    cluster: Cluster,
    workdir: Path,
    *,
    nodes: int = DEFAULT_NODES,
    capacity: dict[str, str] | None = None,
    pod_parallelism: int = 16,
    timeout: float = 60,
) -> Kwok:
    """Start kwok on ``cluster`` and register ``nodes`` fake Nodes; wait until Ready."""
    binary = cluster.bin_dir / "kwok"
    if not binary.exists():
        raise RuntimeError(f"no kwok in {cluster.bin_dir}; run hack/cluster-tools.sh")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "kwok.yaml"
    config.write_text(_config(pod_parallelism))  # JSON is YAML
    log = workdir / "kwok.log"
    args = [
        str(binary),
        f"--kubeconfig={cluster.kubeconfig}",
        f"--config={config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1",
        "--node-lease-duration-seconds=40",
        "--v=WARN",
    ]
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    kwok = Kwok(cluster, popen, log)
    try:
        names = [f"{NODE_PREFIX}{i}" for i in range(nodes)]
        docs = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [node_manifest(n, capacity or DEFAULT_CAPACITY) for n in names],
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(docs))
        kwok.nodes = names
        kwok.wait_ready(timeout)
    except BaseException:
        kwok.stop()
        raise
    return kwok


@pytest.fixture(scope="module")
def kwok_nodes(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kwok]:
    """kwok with DEFAULT_NODES fake nodes for one test module; stopped afterwards."""
    with start_kwok(cluster, tmp_path_factory.mktemp("kwok")) as kwok:
        yield kwok
