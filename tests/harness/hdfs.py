"""A real, throw-away HDFS (one NameNode, one DataNode, WebHDFS) for tests.

Runs Hadoop's MiniDFSCluster through our launcher (hack/hdfs/.../MiniHdfs.java),
whose classpath hack/hdfs-tools.sh builds once from Maven Central and caches
outside the clone. Clients get a generated conf dir (core-site.xml,
hdfs-site.xml), exactly what a trainer pod gets from its ConfigMap.

    with MiniHdfs() as hdfs:
        hdfs_native.Client(hdfs.url).mkdirs("/data")

``MiniHdfs(kerberos="authentication")`` is a secure cluster instead: its own
KDC, Kerberos RPC, block access tokens and SASL-protected data transfer; its
:attr:`MiniHdfs.kerberos` names a client principal and keytab.

The launcher dies with its stdin, so a test run that is killed takes the
cluster with it. Run ``python -m tests.harness.hdfs [authentication]`` to keep
one (Kerberized) up by hand.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from xml.sax.saxutils import escape

__all__ = [
    "HDFS_TOOLS",
    "Kerberos",
    "MiniHdfs",
    "MiniHdfsError",
    "find_hdfs",
    "write_client_conf",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
HDFS_TOOLS = REPO_ROOT / "hack" / "hdfs-tools.sh"
_PREFIX = "MINIHDFS "


class MiniHdfsError(RuntimeError):
    """The test HDFS failed to build, start or answer a command."""


def find_hdfs() -> Path:
    """Build (first time, ~20 s with a cold Maven cache) or find the cached classpath."""
    proc = subprocess.run(["bash", str(HDFS_TOOLS)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("KUBETRAIN_HDFS_HOME="):
        raise MiniHdfsError(f"{HDFS_TOOLS} failed (exit {proc.returncode}): {proc.stdout}")
    return Path(lines[-1].split("=", 1)[1])


@dataclass(frozen=True)
class Kerberos:
    """What a client of a secure cluster needs, as the launcher reported it."""

    realm: str
    krb5_conf: Path  #: for MIT clients (libgssapi_krb5): KRB5_CONFIG
    principal: str  #: the client user, e.g. alice@EXAMPLE.COM, home /user/alice
    keytab: Path
    service: str  #: the NameNode's and DataNode's principal
    protection: str  #: hadoop.rpc.protection and dfs.data.transfer.protection

    @property
    def user(self) -> str:
        return self.principal.split("@", 1)[0]

    def site(self) -> tuple[dict[str, str], dict[str, str]]:
        """(core-site, hdfs-site) properties a client of the cluster sets."""
        core = {
            "hadoop.security.authentication": "kerberos",
            "hadoop.rpc.protection": self.protection,
        }
        hdfs = {
            "dfs.namenode.kerberos.principal": self.service,
            "dfs.data.transfer.protection": self.protection,
        }
        return core, hdfs

    @property
    def kdc_port(self) -> int:
        """The KDC's TCP port on 127.0.0.1, as krb5.conf names it."""
        found = re.search(r"^\s*kdc = 127\.0\.0\.1:(\d+)$", self.krb5_conf.read_text(), re.M)
        if found is None:
            raise MiniHdfsError(f"no 127.0.0.1 KDC in {self.krb5_conf}")
        return int(found[1])

    def krb5_conf_for(self, kdc_host: str) -> str:
        """krb5.conf for clients that reach the KDC at `kdc_host` (e.g. pods, via a proxy)."""
        text = self.krb5_conf.read_text()
        return text.replace(f"kdc = 127.0.0.1:{self.kdc_port}", f"kdc = {kdc_host}:{self.kdc_port}")

    def env(self, ccache: Path, *, credentials: bool = True) -> dict[str, str]:
        """The realm's krb5.conf and a private ticket cache, plus, with `credentials`,
        the keytab login the operator sets up in a pod (KUBETRAIN_PRINCIPAL/KEYTAB)."""
        env = {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{ccache}"}
        if credentials:
            env |= {"KUBETRAIN_PRINCIPAL": self.principal, "KUBETRAIN_KEYTAB": str(self.keytab)}
        return env


def write_client_conf(
    conf_dir: Path,
    rpc: str,
    extra: dict[str, str] | None = None,
    core: dict[str, str] | None = None,
) -> Path:
    """core-site.xml + hdfs-site.xml for a client reaching the NameNode at `rpc` (host:port).

    DataNodes are reached by the hostname they advertise, so a client in
    another network namespace works when the cluster advertises a routable host.
    `extra` and `core` add hdfs-site and core-site properties.
    """
    conf_dir.mkdir(parents=True, exist_ok=True)
    _write_xml(conf_dir / "core-site.xml", {"fs.defaultFS": f"hdfs://{rpc}", **(core or {})})
    _write_xml(
        conf_dir / "hdfs-site.xml",
        {"dfs.client.use.datanode.hostname": "true", **(extra or {})},
    )
    return conf_dir


def _write_xml(path: Path, props: dict[str, str]) -> None:
    body = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
        for k, v in props.items()
    )
    path.write_text(f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n')


def _free_port() -> int:
    """Ask the kernel for an unused port (tiny race accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MiniHdfs:
    """One MiniDFSCluster process, driven over its stdin/stdout protocol.

    Ports are fixed before start so that a restarted NameNode comes back on
    the same address and clients reconnect. `kerberos` (a protection level:
    authentication, integrity or privacy) makes it a secure cluster.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bind_host: str = "0.0.0.0",
        datanode_host: str = "127.0.0.1",
        startup_timeout: float = 180.0,
        kerberos: str | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubetrain-hdfs-"))
        self.bind_host = bind_host
        self.datanode_host = datanode_host
        self.startup_timeout = startup_timeout
        self.rpc_port = _free_port()
        self.http_port = _free_port()
        self.datanode_port = 0  #: the DataNode's data transfer port, once started
        self.protection = kerberos
        self.kerberos: Kerberos | None = None  #: set once a secure cluster is up
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: IO[str] | None = None

    @property
    def url(self) -> str:
        """The NameNode's URI, e.g. ``hdfs://127.0.0.1:40123``."""
        return f"hdfs://127.0.0.1:{self.rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        """Plain HTTP; on a Kerberized cluster it wants SPNEGO (HTTP/localhost)."""
        return f"http://127.0.0.1:{self.http_port}/webhdfs/v1"

    @property
    def conf_dir(self) -> Path:
        """HADOOP_CONF_DIR for clients on this host (fs.defaultFS = :attr:`url`)."""
        return self.workdir / "conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "minihdfs.log"

    def env(self) -> dict[str, str]:
        """Environment for a client process: ours plus HADOOP_CONF_DIR."""
        return {**os.environ, "HADOOP_CONF_DIR": str(self.conf_dir)}

    def write_conf(self, conf_dir: Path, host: str = "127.0.0.1") -> Path:
        """A client conf dir for the NameNode at `host` (for pods: the node's bridge IP),
        with a secure cluster's Kerberos properties."""
        core, hdfs = self.kerberos.site() if self.kerberos else ({}, {})
        return write_client_conf(conf_dir, f"{host}:{self.rpc_port}", hdfs, core)

    def start(self) -> MiniHdfs:
        """Start the cluster and wait until clients can read and write."""
        find_hdfs()
        started = time.monotonic()
        self.write_conf(self.conf_dir)
        self._log = self.log_path.open("w")
        # stdin stays open as the cluster's lifeline; stderr (Hadoop's chatter) goes to a file.
        opts = {
            "base-dir": self.workdir / "data",
            "rpc-port": self.rpc_port,
            "http-port": self.http_port,
            "bind-host": self.bind_host,
            "datanode-host": self.datanode_host,
        }
        if self.protection:
            opts["kerberos"] = self.protection
        self._proc = subprocess.Popen(
            [
                "bash",
                str(HDFS_TOOLS),
                "run",
                *(a for k, v in opts.items() for a in (f"--{k}", str(v))),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._pump, args=(self._proc.stdout,), daemon=True).start()
        try:
            ready = self._expect("READY", self.startup_timeout)
        except MiniHdfsError:
            self.stop()
            raise
        fields = dict(f.split("=", 1) for f in ready.split()[1:])
        self.datanode_port = int(fields["datanode"])
        if self.protection:
            self._secure_client(fields)
        self.startup_seconds = time.monotonic() - started
        return self

    def _secure_client(self, fields: dict[str, str]) -> None:
        """Record the ready line's Kerberos fields and rewrite the client conf for them."""
        self.kerberos = Kerberos(
            realm=fields["realm"],
            krb5_conf=Path(fields["krb5conf"]),
            principal=fields["principal"],
            keytab=Path(fields["keytab"]),
            service=fields["service"],
            protection=str(self.protection),
        )
        self.write_conf(self.conf_dir)

    def stop_namenode(self) -> None:
        """Shut the NameNode down (DataNode stays): clients now get connection refused."""
        self._command("stop-namenode")

    def start_namenode(self) -> None:
        """Bring a stopped NameNode back on the same port and wait for the DataNode."""
        self._command("start-namenode")

    def restart_namenode(self) -> None:
        self.stop_namenode()
        self.start_namenode()

    def stop(self) -> None:
        """Close the lifeline, wait for a clean shutdown, then remove the workdir if ours."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MiniHdfs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self, command: str, timeout: float = 120.0) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise MiniHdfsError("the cluster is not running")
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        self._expect(f"OK {command}", timeout)

    def _pump(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            if line.startswith(_PREFIX):
                self._lines.put(line[len(_PREFIX) :].strip())
        self._lines.put(None)

    def _expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise MiniHdfsError(
                    f"no {prefix!r} in {timeout:.0f}s; see {self._tail()}"
                ) from None
            if line is None:
                raise MiniHdfsError(f"the cluster exited; see {self._tail()}")
            if line.startswith(prefix):
                return line
            if line.startswith("ERROR"):
                raise MiniHdfsError(line)

    def _tail(self) -> str:
        try:
            return self.log_path.read_text()[-3000:]
        except OSError:
            return str(self.log_path)


if __name__ == "__main__":
    import sys

    # An optional argument (authentication, integrity, privacy) makes it Kerberized.
    with MiniHdfs(kerberos=(sys.argv[1:] or [None])[0]) as cluster:
        print(f"HDFS up in {cluster.startup_seconds:.1f}s: {cluster.url}")
        print(f"export HADOOP_CONF_DIR={cluster.conf_dir}")
        if cluster.kerberos:
            krb = cluster.kerberos
            print(f"export KRB5_CONFIG={krb.krb5_conf}")
            print(f"export KUBETRAIN_PRINCIPAL={krb.principal} KUBETRAIN_KEYTAB={krb.keytab}")
        print("press Enter to stop")
        input()
