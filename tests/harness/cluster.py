"""A real, throw-away Kubernetes control plane for end-to-end tests.

Runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler as plain
processes on loopback, with certificates made on the spot, so the tests exercise
real admission (CEL, RBAC, TokenRequest) and real controllers (garbage
collection) without Docker or a kubelet. The binaries come from
hack/cluster-tools.sh, which builds them once from pinned Go modules.

    with start_cluster() as cluster:
        cluster.kubectl("get", "--raw", "/readyz")

Run ``python -m tests.harness.cluster`` to start one by hand and keep it up.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "PROJECT_CRDS",
    "Cluster",
    "ClusterError",
    "KubectlError",
    "find_tools",
    "start_cluster",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_TOOLS = REPO_ROOT / "hack" / "cluster-tools.sh"
#: The project's CRDs, applied by :meth:`Cluster.apply_project_crds` when present.
PROJECT_CRDS = REPO_ROOT / "manifests" / "crd.yaml"
SERVICE_CIDR = "10.96.0.0/16"
#: First address of SERVICE_CIDR: the in-cluster "kubernetes" Service.
KUBERNETES_SERVICE_IP = "10.96.0.1"
ADMIN_USER = "kubetrain-admin"
_CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


#: Everything on by default, minus controllers for volumes, autoscaling, quota and
#: DRA: nothing here has storage or metrics, and each one adds start-up time.
_KCM_CONTROLLERS = (
    "*",
    "-persistentvolume-attach-detach-controller",
    "-persistentvolume-binder-controller",
    "-persistentvolume-expander-controller",
    "-persistentvolume-protection-controller",
    "-persistentvolumeclaim-protection-controller",
    "-ephemeral-volume-controller",
    "-volumeattributesclass-protection-controller",
    "-horizontal-pod-autoscaler-controller",
    "-resourcequota-controller",
    "-resourceclaim-controller",
    "-device-taint-eviction-controller",
    "-storage-version-migrator-controller",
    "-legacy-serviceaccount-token-cleaner-controller",
)


class ClusterError(RuntimeError):
    """The control plane failed to start or became unhealthy."""


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message carries kubectl's own output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def find_tools(names: Sequence[str] = ()) -> Path:
    """Return the directory holding the cluster binaries.

    Uses $KUBETRAIN_TOOLS_BIN when set (CI may build the tools up front);
    otherwise runs hack/cluster-tools.sh, which is instant once the tools are
    cached and builds them from Go modules (tens of minutes) the first time.
    """
    env_bin = os.environ.get("KUBETRAIN_TOOLS_BIN")
    if env_bin:
        return Path(env_bin)
    proc = subprocess.run(
        ["bash", str(CLUSTER_TOOLS), *names],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("KUBETRAIN_TOOLS_BIN="):
        raise ClusterError(f"{CLUSTER_TOOLS} failed (exit {proc.returncode}): {proc.stdout}")
    return Path(lines[-1].split("=", 1)[1])


def _free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str]) -> Path:
    """Write a single-context kubeconfig (JSON is valid YAML, so no yaml dependency)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubetrain-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "kubetrain-test", "context": {"cluster": "kubetrain-test", "user": "user"}}
        ],
        "current-context": "kubetrain-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


_P256 = ("-pkeyopt", "ec_paramgen_curve:prime256v1")


class _Pki:
    """Certificates via the openssl CLI: always present, and no Python dependency."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_crt = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self._cert("ca", "/CN=kubetrain-test-ca", ca=True)

    def _cert(self, name: str, subject: str, *, ca: bool = False, sans: str = "") -> None:
        ext = [
            "[req]",
            "distinguished_name = dn",
            "[dn]",
            "[ext]",
            "subjectKeyIdentifier = hash",
        ]
        if ca:
            ext += [
                "basicConstraints = critical,CA:TRUE",
                "keyUsage = critical,keyCertSign,cRLSign,digitalSignature",
            ]
        else:
            ext += [
                "basicConstraints = critical,CA:FALSE",
                "keyUsage = critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage = serverAuth,clientAuth",
                "authorityKeyIdentifier = keyid",
            ]
            if sans:
                ext.append(f"subjectAltName = {sans}")
        cnf = self.dir / f"{name}.cnf"
        cnf.write_text("\n".join(ext) + "\n")
        cmd = ["openssl", "req", "-x509", "-new", "-config", str(cnf), "-extensions", "ext"]
        cmd += ["-subj", subject, "-days", "3650", "-nodes"]
        cmd += ["-newkey", "ec", *_P256]
        cmd += ["-keyout", str(self.dir / f"{name}.key"), "-out", str(self.dir / f"{name}.crt")]
        if not ca:
            cmd += ["-CA", str(self.ca_crt), "-CAkey", str(self.ca_key)]
        subprocess.run(cmd, check=True, capture_output=True)

    def leaf(self, name: str, subject: str, sans: str = "") -> tuple[Path, Path]:
        """Issue a CA-signed serving/client certificate; return (crt, key)."""
        self._cert(name, subject, sans=sans)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def keypair(self, name: str) -> tuple[Path, Path]:
        """A bare key pair (ServiceAccount token signing); return (private, public)."""
        key, pub = self.dir / f"{name}.key", self.dir / f"{name}.pub"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "EC", "-out", str(key), *_P256],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
            check=True,
            capture_output=True,
        )
        return key, pub


def die_with_parent() -> None:
    """Runs in the child: SIGKILL it if the test process dies without teardown
    (e.g. pytest-timeout's thread method calls os._exit), so no etcd lingers."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop_process_group(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM a process started in its own group, SIGKILL it after `grace` seconds."""
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(grace)


@dataclass
class _Process:
    """One control-plane process, its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    args: list[str]

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        stop_process_group(self.popen, grace)


@dataclass
class Cluster:
    """A running control plane; see :func:`start_cluster`.

    Attributes: ``kubeconfig`` (admin, system:masters), ``server`` (https URL),
    ``bin_dir`` (kubectl, helm, kwok, ...), ``ca_file``, ``workdir`` (certs,
    kubeconfigs, ``logs/<component>.log``).
    """

    kubeconfig: Path
    server: str
    bin_dir: Path
    ca_file: Path
    workdir: Path
    _admin_cert: tuple[Path, Path]
    #: Seconds start_cluster took, from first process to ready (for reports).
    startup_seconds: float = 0.0
    _processes: list[_Process] = field(default_factory=list)
    _owns_workdir: bool = False

    # -- kubectl & clients -------------------------------------------------
    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (as admin unless ``kubeconfig`` is given).

        Output is captured as text; with ``check`` a non-zero exit raises
        :class:`KubectlError` showing kubectl's stderr.
        """
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig or self.kubeconfig)]
        env = {**os.environ, "KUBECACHEDIR": str(self.workdir / "kubectl-cache")}
        proc = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def api_client(self) -> ApiClient:
        """A new admin ``kubernetes.client.ApiClient`` (imported lazily: optional dep)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def serviceaccount_kubeconfig(
        self, namespace: str, name: str, *, duration: str = "24h"
    ) -> Path:
        """Create namespace + ServiceAccount if missing, mint a token with the
        TokenRequest API, and write a kubeconfig that authenticates as that SA.

        Lets a test act exactly as an in-cluster workload (e.g. the operator)
        with only the RBAC it was granted.
        """
        objects = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": namespace},
                },
            ],
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(objects))
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        out = self.workdir / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig"
        out.parent.mkdir(exist_ok=True)
        return _write_kubeconfig(out, self.server, self.ca_file, {"token": token})

    # -- manifests ---------------------------------------------------------
    def apply_crds(self, path: Path, timeout: float = 60) -> None:
        """Apply a CRD manifest and wait until every CRD in it is Established."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={int(timeout)}s",
            "-f",
            str(path),
            timeout=timeout + 30,
        )

    def apply_project_crds(self) -> bool:
        """Apply manifests/crd.yaml if it exists yet; return whether it did."""
        if not PROJECT_CRDS.is_file():
            return False
        self.apply_crds(PROJECT_CRDS)
        return True

    # -- health & lifecycle ------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(*map(str, self._admin_cert))
        return ctx

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        """Raw admin GET on the apiserver: (status, body); status 0 if unreachable.

        Used for readiness polling, where spawning kubectl each time is too slow.
        """
        try:
            with urllib.request.urlopen(
                self.server + path, context=self._ssl_context(), timeout=timeout
            ) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def check_alive(self) -> None:
        """Raise :class:`ClusterError` with a log tail if a component has exited."""
        for p in self._processes:
            code = p.popen.poll()
            if code is not None:
                raise ClusterError(f"{p.name} exited with {code}; log {p.log}:\n{p.tail()}")

    def wait_for(self, what: str, probe: Callable[[], bool], timeout: float = 60) -> None:
        """Poll ``probe`` every 0.1 s, failing fast if a component dies."""
        deadline = time.monotonic() + timeout
        while not probe():
            self.check_alive()
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}:\n{p.tail(10)}" for p in self._processes)
                raise ClusterError(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every component (reverse start order) and remove a temp workdir.

        Set KUBETRAIN_KEEP_CLUSTER=1 to keep the workdir (logs) for debugging.
        """
        for p in reversed(self._processes):
            p.stop()
        self._processes.clear()
        if self._owns_workdir and not os.environ.get("KUBETRAIN_KEEP_CLUSTER"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, name: str, down_seconds: float = 0.0, timeout: float = 60) -> None:
        """Stop one component and start it again with the same flags (chaos tests).

        For the apiserver, returns once /readyz answers again.
        """
        proc = next(p for p in self._processes if p.name == name)
        proc.stop()
        self._processes.remove(proc)
        time.sleep(down_seconds)
        self._spawn(name, proc.args, append=True)
        if name == "kube-apiserver":
            self.wait_for("kube-apiserver ready", lambda: self.get("/readyz")[0] == 200, timeout)

    def _spawn(self, name: str, args: list[str], append: bool = False) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab" if append else "wb") as fh:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # own process group: teardown kills all of it
                preexec_fn=die_with_parent,
            )
        self._processes.append(_Process(name, popen, log, args))


def start_cluster(
    bin_dir: Path | None = None,
    workdir: Path | None = None,
    *,
    timeout: float = 90,
    extra_apiserver_args: Sequence[str] = (),
) -> Cluster:
    """Start etcd + kube-apiserver + kube-controller-manager + kube-scheduler.

    Returns once /readyz is ok and the ``default`` ServiceAccount exists (proof
    that the controller-manager runs). On failure everything started is stopped.
    ``workdir`` defaults to a fresh temp dir that :meth:`Cluster.stop` deletes.
    """
    t0 = time.monotonic()
    bin_dir = bin_dir or find_tools()
    missing = [n for n in _CONTROL_PLANE if not (bin_dir / n).exists()]
    if missing:
        raise ClusterError(f"missing {missing} in {bin_dir}; run {CLUSTER_TOOLS}")
    owns = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kubetrain-cluster-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)

    pki = _Pki(work / "pki")
    api_port, etcd_port, peer_port = _free_port(), _free_port(), _free_port()
    server = f"https://127.0.0.1:{api_port}"
    sans = (
        f"IP:127.0.0.1,IP:{KUBERNETES_SERVICE_IP},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local"
    )
    serving = pki.leaf("apiserver", "/CN=kube-apiserver", sans)
    admin = pki.leaf("admin", f"/O=system:masters/CN={ADMIN_USER}")
    kcm = pki.leaf("controller-manager", "/CN=system:kube-controller-manager")
    sched = pki.leaf("scheduler", "/CN=system:kube-scheduler")
    sa_key, sa_pub = pki.keypair("service-account")

    def cert_kubeconfig(name: str, pair: tuple[Path, Path]) -> Path:
        user = {"client-certificate-data": _b64(pair[0]), "client-key-data": _b64(pair[1])}
        return _write_kubeconfig(work / f"{name}.kubeconfig", server, pki.ca_crt, user)

    cluster = Cluster(
        kubeconfig=cert_kubeconfig("admin", admin),
        server=server,
        bin_dir=bin_dir,
        ca_file=pki.ca_crt,
        workdir=work,
        _admin_cert=admin,
        _owns_workdir=owns,
    )
    try:
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        cluster._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",  # throw-away data: skip fsync for speed
                "--log-level=warn",
            ],
        )
        cluster._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={work / 'apiserver-certs'}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca_crt}",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # A loopback advertise address is invalid in Endpoints, so skip
                # the "kubernetes" Service endpoint reconciler entirely.
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=0",
                *extra_apiserver_args,
            ],
        )
        cluster.wait_for(
            "kube-apiserver /readyz", lambda: cluster.get("/readyz")[0] == 200, timeout
        )
        common = ["--leader-elect=false", "--profiling=false", "--secure-port=0", "--v=0"]
        cluster._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={cert_kubeconfig('controller-manager', kcm)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki.ca_crt}",
                f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--controllers={','.join(_KCM_CONTROLLERS)}",
                *common,
            ],
        )
        cluster._spawn(
            "kube-scheduler",
            [f"--kubeconfig={cert_kubeconfig('scheduler', sched)}", *common],
        )
        cluster.wait_for(
            "the default ServiceAccount (controller-manager)",
            lambda: cluster.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            timeout,
        )
        cluster.check_alive()
        cluster.startup_seconds = time.monotonic() - t0
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main() -> None:
    """Start a cluster, print how to reach it, and keep it up until Ctrl-C."""
    t0 = time.monotonic()
    with start_cluster() as cluster:
        print(f"ready in {time.monotonic() - t0:.1f}s")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"export PATH={cluster.bin_dir}:$PATH")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
                cluster.check_alive()


if __name__ == "__main__":
    main()
