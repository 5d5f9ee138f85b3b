"""One small filesystem seam for local paths and hdfs:// / viewfs:// URIs.

The data layer and the exporter talk to `FileSystem` only, so every reader
and writer works the same on a local disk, a mounted volume and HDFS. Paths
are kept as the user wrote them (full URIs for HDFS) so error messages and
shard assignments name what the job spec names.
"""

from __future__ import annotations

import glob as globmod
import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import urlsplit

from kubetrain_trainer.data.errors import DataError

REMOTE_SCHEMES = ("hdfs", "viewfs")
CHUNK = 4 << 20  # big enough to amortise a DataNode round trip, small enough to stream


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    is_dir: bool


class FileSystem(Protocol):
    """What the data layer needs from a filesystem; every method takes full paths/URIs."""

    def info(self, path: str) -> FileInfo | None:
        """The entry at `path`, or None when there is none."""
        ...

    def listdir(self, path: str) -> list[FileInfo]: ...

    def glob(self, pattern: str) -> list[FileInfo]: ...

    def stream(self, path: str) -> Iterator[bytes]:
        """The file's bytes front to back in large chunks (the fast sequential read)."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A seekable reader (Parquet reads its footer first)."""
        ...

    def create(self, path: str) -> BinaryIO:
        """A writer that replaces `path`, creating parent directories."""
        ...

    def makedirs(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomic rename; `dst` must not exist."""
        ...

    def delete(self, path: str) -> None:
        """Remove a file or a whole tree; a missing path is fine."""
        ...


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in REMOTE_SCHEMES


def has_magic(path: str) -> bool:
    """Whether `path` is a glob pattern."""
    return any(c in path for c in "*?[{")


def join(base: str, *names: str) -> str:
    """Join path components; URIs always use '/'."""
    return "/".join([base.rstrip("/"), *names]) if is_remote(base) else os.path.join(base, *names)


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a path or URI."""
    if is_remote(path):
        parent, _, name = path.rstrip("/").rpartition("/")
        return parent, name
    return os.path.split(path.rstrip(os.sep))


def filesystem(uri: str) -> FileSystem:
    """The filesystem that serves `uri`.

    Raises:
        DataError: an unsupported scheme.
    """
    parts = urlsplit(uri)
    if parts.scheme in REMOTE_SCHEMES:
        from kubetrain_trainer.data import hdfs

        return hdfs.filesystem(f"{parts.scheme}://{parts.netloc}")
    if parts.scheme in ("", "file"):
        return LOCAL
    raise DataError(
        f"{uri}: unsupported scheme {parts.scheme!r} (use a path, hdfs:// or viewfs://)"
    )


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks (for parsers that want a file)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def sequential(path: str) -> BinaryIO:
    """A forward-only file over `stream(path)`: HDFS's fastest read, as a file object."""
    return cast(BinaryIO, io.BufferedReader(_ChunkReader(filesystem(path).stream(path)), CHUNK))


def copy_tree(src: str, dst: str) -> None:
    """Copy a local directory tree to `dst` on any filesystem, streaming each file."""
    target = filesystem(dst)
    for root, _dirs, names in os.walk(src):
        rel = os.path.relpath(root, src)
        base = dst if rel == "." else join(dst, *Path(rel).parts)
        target.makedirs(base)
        for name in names:
            with (
                open(os.path.join(root, name), "rb") as fin,
                target.create(join(base, name)) as out,
            ):
                shutil.copyfileobj(fin, out, CHUNK)


class LocalFileSystem:
    """The local disk (and anything mounted into the pod)."""

    @staticmethod
    def _path(path: str) -> str:
        return path.removeprefix("file://")

    def info(self, path: str) -> FileInfo | None:
        try:
            st = os.stat(self._path(path))
        except FileNotFoundError:
            return None
        return FileInfo(path, st.st_size, os.path.isdir(self._path(path)))

    def listdir(self, path: str) -> list[FileInfo]:
        entries = (self.info(os.path.join(path, n)) for n in os.listdir(self._path(path)))
        return [e for e in entries if e is not None]

    def glob(self, pattern: str) -> list[FileInfo]:
        entries = (self.info(p) for p in globmod.glob(self._path(pattern)))
        return [e for e in entries if e is not None]

    def stream(self, path: str) -> Iterator[bytes]:
        with open(self._path(path), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def open(self, path: str) -> BinaryIO:
        return open(self._path(path), "rb")

    def create(self, path: str) -> BinaryIO:
        os.makedirs(os.path.dirname(self._path(path)) or ".", exist_ok=True)
        return open(self._path(path), "wb")

    def makedirs(self, path: str) -> None:
        os.makedirs(self._path(path), exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.rename(self._path(src), self._path(dst))

    def delete(self, path: str) -> None:
        p = self._path(path)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.remove(p)


LOCAL = LocalFileSystem()
