"""The test kubelet against a real control plane: pods run as local processes.

Proves what the e2e suites rely on: phases and exit codes, downward-API env,
volumes/init containers/restarts, pod-to-pod traffic by headless-Service name
on a shared port, in-cluster API access, real scheduling of extended
resources, and that deleting a pod kills its process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client

from tests.harness.cluster import Cluster
from tests.harness.kubelet import DEFAULT_NODE, KubeletPool, TestKubelet, kubelet_pool
from tests.harness.netns import HostNetwork

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

T = TypeVar("T")
PY = sys.executable


@pytest.fixture(scope="module")
def pool(
    request: pytest.FixtureRequest, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeletPool]:
    """The session's `kubelets` fixture if conftest wires it, else a pool of our own."""
    try:
        shared = request.getfixturevalue("kubelets")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    with kubelet_pool(cluster, tmp_path_factory.mktemp("kubelets")) as own:
        yield own


@pytest.fixture(scope="module")
def node(pool: KubeletPool) -> TestKubelet:
    """The default CPU-only node."""
    return pool.ensure(DEFAULT_NODE)


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture
def ns(core: client.CoreV1Api, node: TestKubelet) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted afterwards."""
    name = f"kl-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: _exists(lambda: core.read_namespaced_service_account("default", name)), 30)
    yield name
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(name)


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def wait_for(probe: Callable[[], T | None], timeout: float, what: str = "condition") -> T:
    """Poll probe until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def py_pod(name: str, script: str, *, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    """A single-container pod running `python -c script` with our venv's python."""
    container = {"name": "main", "image": "python:3.11", "command": [PY, "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
            **spec,
        },
    }


def wait_phase(
    core: client.CoreV1Api, ns: str, name: str, phases: set[str], timeout: float = 60
) -> Any:
    """Wait for one of phases; fail fast with the status if a terminal phase is not wanted."""

    def probe() -> Any:
        pod: Any = core.read_namespaced_pod(name, ns)
        if pod.status.phase in phases:
            return pod
        if pod.status.phase in ("Succeeded", "Failed"):
            raise AssertionError(f"pod {name} is {pod.status.phase}: {pod.status}")
        return None

    return wait_for(probe, timeout, f"pod {name} in {phases}")


def test_pod_runs_to_success(core: client.CoreV1Api, ns: str, pool: KubeletPool) -> None:
    core.create_namespaced_pod(ns, py_pod("ok", "print('hello from a pod')"))
    pod = wait_phase(core, ns, "ok", {"Succeeded"})
    (cs,) = pod.status.container_statuses
    assert cs.state.terminated.exit_code == 0
    assert cs.state.terminated.reason == "Completed"
    assert pod.spec.node_name == DEFAULT_NODE
    assert pod.status.pod_ip and pod.status.start_time
    ready = {c.type: c.status for c in pod.status.conditions}
    assert ready["PodScheduled"] == "True" and ready["Ready"] == "False"
    assert "hello from a pod" in pool.logs(ns, "ok")


def test_failing_command_reports_exit_code(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, py_pod("bad", "import sys; sys.exit(3)"))
    pod = wait_phase(core, ns, "bad", {"Failed"})
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (3, "Error")
    assert term.started_at and term.finished_at


def test_missing_command_fails_clearly(core: client.CoreV1Api, ns: str) -> None:
    pod = py_pod("noentry", "")
    del pod["spec"]["containers"][0]["command"]
    core.create_namespaced_pod(ns, pod)
    got = wait_phase(core, ns, "noentry", {"Failed"})
    term = got.status.container_statuses[0].state.terminated
    assert term.reason == "ContainerCannotRun" and "entrypoint" in term.message


def test_env_from_field_and_config_map_refs(
    core: client.CoreV1Api, ns: str, pool: KubeletPool
) -> None:
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "from-cm"})
    )
    script = "import os; [print(f'{k}={os.environ[k]}') for k in sorted(os.environ)]"
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "COMBINED", "value": "$(POD_NAME)-$(ROLE)"},
    ]
    pod = py_pod("envy", script, labels={"role": "chief"}, container={"env": env})
    core.create_namespaced_pod(ns, pod)
    got = wait_phase(core, ns, "envy", {"Succeeded"})
    out = dict(line.split("=", 1) for line in pool.logs(ns, "envy").splitlines() if "=" in line)
    assert out["POD_NAME"] == "envy" and out["POD_NS"] == ns and out["ROLE"] == "chief"
    assert out["POD_IP"] == got.status.pod_ip
    assert out["CM"] == "from-cm" and out["COMBINED"] == "envy-chief"


def test_volumes_init_container_and_restart(
    core: client.CoreV1Api, ns: str, pool: KubeletPool
) -> None:
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="conf"), data={"a.txt": "A"})
    )
    init = {
        "name": "init",
        "image": "busybox",
        "command": [PY, "-c", "open('/kt-data/init', 'w').write('done')"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/kt-data"}],
    }
    # First run fails, the restart (same emptyDir) succeeds: restartCount 1.
    script = textwrap.dedent("""
        import os, sys
        assert open('/kt-data/init').read() == 'done'
        assert open('/etc/kt-conf/a.txt').read() == 'A'
        first = not os.path.exists('/kt-data/ran')
        open('/kt-data/ran', 'w').close()
        print('cwd', os.getcwd())
        sys.exit(1 if first else 0)
    """)
    pod = py_pod(
        "vols",
        script,
        restart="OnFailure",
        initContainers=[init],
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "conf"}},
        ],
        container={
            "workingDir": "/kt-data/wd",
            "volumeMounts": [
                {"name": "scratch", "mountPath": "/kt-data"},
                {"name": "conf", "mountPath": "/etc/kt-conf", "readOnly": True},
            ],
        },
    )
    core.create_namespaced_pod(ns, pod)
    got = wait_phase(core, ns, "vols", {"Succeeded"})
    cs = got.status.container_statuses[0]
    assert cs.restart_count == 1
    assert cs.last_state.terminated.exit_code == 1
    assert got.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert "cwd /kt-data/wd" in pool.logs(ns, "vols", "main")
    assert not os.path.exists("/etc/kt-conf/a.txt")  # mounts stay in the pod's namespace


PEER = textwrap.dedent("""
    import socket, sys, threading, time
    me, peer = sys.argv[1], sys.argv[2]
    srv = socket.create_server(('0.0.0.0', 2222))
    served = threading.Event()
    def serve():
        conn, _ = srv.accept()
        conn.sendall(f'pong from {me}'.encode()); conn.close(); served.set()
    threading.Thread(target=serve, daemon=True).start()
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection((peer, 2222), timeout=2) as s:
                print('got', s.recv(100).decode(), 'via', peer, flush=True)
            break
        except OSError as exc:
            if time.time() > deadline:
                raise
            time.sleep(0.3)
    assert served.wait(60)
""")


def test_pods_talk_by_headless_service_name_on_same_port(
    core: client.CoreV1Api, ns: str, pool: KubeletPool, node: TestKubelet
) -> None:
    if isinstance(node.network, HostNetwork):
        pytest.skip("no network namespaces here: pods share the host network and its ports")
    names = {"w0": f"w1.{ns}.svc", "w1": f"w0.{ns}.svc.cluster.local"}
    for me, peer in names.items():
        svc = client.V1Service(
            metadata=client.V1ObjectMeta(name=me),
            spec=client.V1ServiceSpec(
                cluster_ip="None",
                selector={"replica": me},
                ports=[client.V1ServicePort(port=2222)],
            ),
        )
        core.create_namespaced_service(ns, svc)
        pod = py_pod(me, PEER, labels={"replica": me}, container={"args": [me, peer]})
        core.create_namespaced_pod(ns, pod)
    ips = {}
    for me, peer in names.items():
        ips[me] = wait_phase(core, ns, me, {"Succeeded"}).status.pod_ip
        other = "w1" if me == "w0" else "w0"
        assert f"got pong from {other} via {peer}" in pool.logs(ns, me)
    assert len(set(ips.values())) == 2


def test_in_cluster_api_access(
    core: client.CoreV1Api, ns: str, pool: KubeletPool, node: TestKubelet
) -> None:
    script = textwrap.dedent("""
        import json, os, ssl, sys, urllib.request
        sa = '/var/run/secrets/kubernetes.io/serviceaccount'
        token = open(f'{sa}/token').read()
        ctx = ssl.create_default_context(cafile=f'{sa}/ca.crt')
        host = os.environ['KUBERNETES_SERVICE_HOST'] + ':' + os.environ['KUBERNETES_SERVICE_PORT']
        for base in {f'https://{host}', 'https://kubernetes.default.svc:' + sys.argv[1]}:
            req = urllib.request.Request(
                base + '/apis/authentication.k8s.io/v1/selfsubjectreviews', method='POST',
                data=json.dumps({'apiVersion': 'authentication.k8s.io/v1',
                                 'kind': 'SelfSubjectReview'}).encode(),
                headers={'Authorization': 'Bearer ' + token,
                         'Content-Type': 'application/json'})
            review = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))
            print('user', review['status']['userInfo']['username'])
        print('ns', open(f'{sa}/namespace').read())
    """)
    port = str(node.kube_service[1])  # 443, or the apiserver's own port on the host network
    core.create_namespaced_pod(ns, py_pod("incluster", script, container={"args": [port]}))
    wait_phase(core, ns, "incluster", {"Succeeded"})
    out = pool.logs(ns, "incluster")
    assert out.count(f"user system:serviceaccount:{ns}:default") >= 1
    assert f"ns {ns}" in out


def test_gpu_pod_waits_for_a_gpu_node(core: client.CoreV1Api, ns: str, pool: KubeletPool) -> None:
    pod = py_pod(
        "gpu",
        "print('on a gpu node')",
        container={"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    )
    core.create_namespaced_pod(ns, pod)

    def unschedulable() -> bool:
        conds = core.read_namespaced_pod("gpu", ns).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conds)

    wait_for(unschedulable, 30, "the scheduler to find no GPU node")
    time.sleep(2)
    still = core.read_namespaced_pod("gpu", ns)
    assert still.status.phase == "Pending" and not still.spec.node_name
    pool.start("kt-gpu-node", {"nvidia.com/gpu": "1"})
    try:
        done = wait_phase(core, ns, "gpu", {"Succeeded"}, timeout=90)
        assert done.spec.node_name == "kt-gpu-node"
        assert "on a gpu node" in pool.logs(ns, "gpu")
    finally:
        pool.stop("kt-gpu-node")


def test_deleting_a_running_pod_kills_its_process(
    core: client.CoreV1Api, ns: str, pool: KubeletPool
) -> None:
    script = textwrap.dedent("""
        import os, signal, sys, time
        def bye(*_):
            print('got SIGTERM', flush=True); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('pid', os.getpid(), flush=True)
        time.sleep(600)
    """)
    core.create_namespaced_pod(ns, py_pod("sleeper", script, restart="Always"))
    wait_phase(core, ns, "sleeper", {"Running"})

    def pid() -> int | None:
        with contextlib.suppress(FileNotFoundError):
            for line in pool.logs(ns, "sleeper").splitlines():
                if line.startswith("pid "):
                    return int(line.split()[1])
        return None

    proc_id = wait_for(pid, 30, "the pod to print its pid")
    os.kill(proc_id, 0)  # alive
    core.delete_namespaced_pod("sleeper", ns)
    wait_for(lambda: not _exists(lambda: core.read_namespaced_pod("sleeper", ns)), 30, "deletion")
    with pytest.raises(ProcessLookupError):
        os.kill(proc_id, 0)
    assert "got SIGTERM" in pool.logs(ns, "sleeper")


def test_pods_reach_a_loopback_host_service(
    core: client.CoreV1Api, ns: str, pool: KubeletPool, node: TestKubelet
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        node.expose_host_port(port)

        def greet() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"hello from the host")

        server = threading.Thread(target=greet, daemon=True)
        server.start()
        script = (
            "import socket, sys\n"
            f"s = socket.create_connection(('host.kubetrain.test', {port}), timeout=10)\n"
            "print(s.recv(100).decode())"
        )
        core.create_namespaced_pod(ns, py_pod("hostsvc", script))
        wait_phase(core, ns, "hostsvc", {"Succeeded"})
        server.join(5)
    assert "hello from the host" in pool.logs(ns, "hostsvc")
