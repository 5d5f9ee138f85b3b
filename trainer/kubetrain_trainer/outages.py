"""HDFS going away mid-write is an outage (retried), not a bug in the job.

hdfs-native's writers fail with a bare OSError when the NameNode or a
DataNode goes away mid-write: no errno, only Rust's text, e.g. "Connection
refused (os error 111)" when the file is closed. Left as is it reads as an
error in the job: exit 1, never retried. The data layer already treats a
NameNode that does not answer as `HdfsUnavailableError`; writes of
checkpoints and of the final model get the same treatment here, for
network errors only (a full disk is not an outage).
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator

from kubetrain_trainer.data import fs
from kubetrain_trainer.data.hdfs import HdfsUnavailableError

_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EPIPE,
}


def is_network_error(err: OSError) -> bool:
    """Whether `err` says a peer could not be reached, by type or by Rust's errno text."""
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    code = err.errno
    if code is None:
        found = _RUST_OS_ERROR.search(str(err))
        code = int(found.group(1)) if found else None
    return code in _NETWORK_ERRNOS


@contextlib.contextmanager
def retryable(uri: str, what: str) -> Iterator[None]:
    """Re-raise a network OSError from writing to remote `uri` as HdfsUnavailableError."""
    try:
        yield
    except OSError as err:
        if not fs.is_remote(uri) or not is_network_error(err):
            raise
        raise HdfsUnavailableError(
            f"{uri}: {what} failed, cannot reach the HDFS NameNode or DataNode: {err}"
        ) from err
