"""hdfs:// and viewfs:// through hdfs-native (no JVM, reads HADOOP_CONF_DIR).

Simple auth takes HADOOP_USER_NAME (hdfs-native reads it); Kerberos takes the
keytab and principal the operator mounts and names in KUBETRAIN_KEYTAB and
KUBETRAIN_PRINCIPAL, or an existing ticket cache (KRB5CCNAME).

Failing fast matters more than riding out an outage: a job whose NameNode is
gone should say so within seconds, and the operator's restart policy decides
what happens next. hdfs-native retries a refused NameNode for ~3 minutes by
default and has no connect timeout, so we (1) lower its failover retries
unless the site config sets them and (2) bound every NameNode call with our
own deadline. Streaming reads are not bounded here: a DataNode that stalls
mid-block is hdfs-native's to detect.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

from kubetrain_trainer.data import hadoopconf
from kubetrain_trainer.data.errors import DataError, NotFoundError
from kubetrain_trainer.data.fs import FileInfo

T = TypeVar("T")

#: Seconds any NameNode call may take before the job gives up on HDFS.
TIMEOUT_ENV = "KUBETRAIN_HDFS_TIMEOUT"
DEFAULT_TIMEOUT = 20.0

#: Set by the operator when spec.data.hdfs names a Kerberos secret and principal.
PRINCIPAL_ENV = "KUBETRAIN_PRINCIPAL"
KEYTAB_ENV = "KUBETRAIN_KEYTAB"

#: Three quick attempts (~2 s) instead of hdfs-native's ~3 minutes; enough to
#: step over an HA failover to an already-active standby.
FAIL_FAST = {
    "dfs.client.failover.max.attempts": "3",
    "dfs.client.failover.sleep.base.millis": "200",
    "dfs.client.failover.sleep.max.millis": "1000",
}


class HdfsUnavailableError(DataError):
    """The NameNode did not answer (refused, unreachable or too slow).

    A subclass so a caller can treat an outage as retryable and a bad path as final.
    """


class HdfsAuthError(DataError):
    """Kerberos login or SASL authentication to HDFS failed.

    A configuration error (no keytab, a wrong principal, no krb5.conf for the
    realm), so permanent: retrying cannot make the credentials appear.
    """


# hdfs-native's errors for a failed login: GSSAPI (MIT Kerberos), SASL, or no libgssapi at all.
_AUTH_ERRORS = ("GSSAPIError", "SASLError", "libgssapi_krb5")
# GSSAPIError(GssMajorCodes { ... }, <minor>, "<what MIT Kerberos says>")
_GSS_MESSAGE = re.compile(r'"((?:[^"\\]|\\.)*)"\)\s*$')


def _login() -> str:
    """The credentials this process offers, as the error message names them."""
    principal, keytab = os.environ.get(PRINCIPAL_ENV), os.environ.get(KEYTAB_ENV)
    if principal and keytab:
        return f"keytab {keytab} for {principal}"
    cache = os.environ.get("KRB5CCNAME") or "the default ticket cache"
    return f"no keytab ({PRINCIPAL_ENV}/{KEYTAB_ENV} unset), {cache}"


def auth_error(what: str, err: BaseException) -> HdfsAuthError | None:
    """A clear HdfsAuthError for hdfs-native's Kerberos failure `err`, or None.

    Network errors (OSError) are never auth errors: they stay retryable outages.
    """
    text = str(err)
    if isinstance(err, OSError) or not any(marker in text for marker in _AUTH_ERRORS):
        return None
    found = _GSS_MESSAGE.search(text)
    reason = found.group(1).replace('\\"', '"') if found else _first_line(err)
    return HdfsAuthError(
        f"{what}: Kerberos authentication to HDFS failed ({_login()}): {reason}. "
        "Check spec.data.hdfs principal and kerberosSecret, and the realm's krb5.conf"
    )


# DataTransferError("All DataNodes failed: [DatanodeInfoProto { ... ip_addr: \"h\", ... xfer_port: N
_DATANODE = re.compile(r'ip_addr: \\"([^"\\]+)\\".*?xfer_port: (\d+)')
PROTECTION_KEY = "dfs.data.transfer.protection"


def datanode_error(path: str, err: BaseException) -> DataError | None:
    """A short DataError for hdfs-native's "All DataNodes failed" (a dump of every
    DataNode's record), or None for any other error.

    The usual cause on a secure cluster is a client conf without the cluster's
    dfs.data.transfer.protection: the DataNodes then drop the unprotected
    connection, and nothing else in the error says so.
    """
    text = str(err)
    if "DataTransferError" not in text:
        return None
    nodes = ", ".join(f"{host}:{port}" for host, port in _DATANODE.findall(text)) or "none"
    hint = ""
    if PROTECTION_KEY not in site_config():
        hint = (
            f"; if the cluster protects data transfer, hdfs-site.xml must set {PROTECTION_KEY}"
            " as the cluster does"
        )
    return DataError(f"{path}: read failed: no DataNode would serve it (tried {nodes}){hint}")


def site_config() -> dict[str, str]:
    """Properties of the Hadoop conf dir's core-site.xml and hdfs-site.xml."""
    return hadoopconf.read(hadoopconf.conf_dir())


def timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)


def _first_line(err: BaseException) -> str:
    """hdfs-native errors carry the NameNode's Java stack trace; the first line says it all."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class HdfsFileSystem:
    """One namespace (`hdfs://authority` or `viewfs://cluster`) and its client."""

    def __init__(self, base: str) -> None:
        # "hdfs://" (no authority: fs.defaultFS) must keep its slashes.
        self.base = base if base.endswith("://") else base.rstrip("/")
        self._lock = threading.Lock()
        self._client: Any = None

    # -- plumbing -----------------------------------------------------------

    def _path(self, uri: str) -> str:
        """The absolute path inside this namespace (hdfs-native takes no URIs).

        Not urlsplit: a glob's '?' or '#' would be taken for a query or fragment.
        """
        rest = uri.split("://", 1)[-1]
        return "/" + rest.partition("/")[2]

    def _uri(self, path: str) -> str:
        return self.base + path

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run `fn(client)` under the deadline, mapping errors to DataError.

        A daemon thread, because a call stuck on a silent host cannot be
        cancelled and must not keep the process alive at exit.
        """
        client = self.client()
        return self._bounded(what, lambda: fn(client))

    def _bounded(self, what: str, fn: Callable[[], T]) -> T:
        result: list[T] = []
        error: list[BaseException] = []

        def run() -> None:
            try:
                result.append(fn())
            except BaseException as err:
                error.append(err)

        worker = threading.Thread(target=run, name="hdfs-call", daemon=True)
        worker.start()
        limit = timeout()
        worker.join(limit)
        if worker.is_alive():
            raise HdfsUnavailableError(
                f"{what}: no answer from the HDFS NameNode of {self.base} in {limit:.0f}s"
            )
        if error:
            err = error[0]
            if isinstance(err, FileNotFoundError):
                raise NotFoundError(f"{what}: not found on HDFS ({_first_line(err)})") from err
            auth = auth_error(what, err)
            if auth is not None:
                raise auth from err
            if isinstance(err, FileExistsError | PermissionError | IsADirectoryError):
                raise DataError(f"{what}: {_first_line(err)}") from err
            if isinstance(err, OSError):
                raise HdfsUnavailableError(
                    f"{what}: cannot reach the HDFS NameNode of {self.base}: {_first_line(err)}"
                ) from err
            raise DataError(f"{what}: HDFS error: {_first_line(err)}") from err
        return result[0]

    def client(self) -> Any:
        """The hdfs-native client, created once (creating it resolves the config)."""
        with self._lock:
            if self._client is None:
                import hdfs_native

                site = hadoopconf.check(self.base)
                overrides = {k: v for k, v in FAIL_FAST.items() if k not in site}
                authority = urlsplit(self.base).netloc
                url = self.base if authority else None  # hdfs:/// means fs.defaultFS
                kerberos = {}
                principal, keytab = os.environ.get(PRINCIPAL_ENV), os.environ.get(KEYTAB_ENV)
                if principal and keytab:
                    kerberos = {"kerberos_principal": principal, "kerberos_keytab": keytab}
                self._client = self._bounded(
                    self.base, lambda: hdfs_native.Client(url, config=overrides, **kerberos)
                )
            return self._client

    def _status(self, status: Any) -> FileInfo:
        return FileInfo(self._uri(status.path), int(status.length), bool(status.isdir))

    # -- FileSystem ---------------------------------------------------------

    def info(self, path: str) -> FileInfo | None:
        try:
            st = self._call(path, lambda c: c.get_file_info(self._path(path)))
        except NotFoundError:
            return None
        return FileInfo(path, int(st.length), bool(st.isdir))

    def listdir(self, path: str) -> list[FileInfo]:
        entries = self._call(path, lambda c: list(c.list_status(self._path(path))))
        return [self._status(s) for s in entries]

    def glob(self, pattern: str) -> list[FileInfo]:
        entries = self._call(pattern, lambda c: c.glob_status(self._path(pattern)))
        return [self._status(s) for s in entries]

    def stream(self, path: str) -> Iterator[bytes]:
        reader = self._call(path, lambda c: c.read(self._path(path)))
        try:
            yield from reader.read_range_stream(0, len(reader))
        except OSError as err:
            raise DataError(f"{path}: read failed: {_first_line(err)}") from err
        except RuntimeError as err:
            refused = datanode_error(path, err)
            if refused is None:
                raise
            raise refused from err

    def open(self, path: str) -> BinaryIO:
        return cast(BinaryIO, self._call(path, lambda c: c.read(self._path(path))))

    def create(self, path: str) -> BinaryIO:
        import hdfs_native

        options = hdfs_native.WriteOptions(overwrite=True, create_parent=True)
        return cast(BinaryIO, self._call(path, lambda c: c.create(self._path(path), options)))

    def makedirs(self, path: str) -> None:
        self._call(path, lambda c: c.mkdirs(self._path(path), 0o755, True))

    def rename(self, src: str, dst: str) -> None:
        self._call(f"{src} -> {dst}", lambda c: c.rename(self._path(src), self._path(dst)))

    def delete(self, path: str) -> None:
        self._call(path, lambda c: c.delete(self._path(path), True))


@functools.cache
def filesystem(base: str) -> HdfsFileSystem:
    """One client per namespace and process (hdfs-native clients are thread-safe)."""
    return HdfsFileSystem(base)
