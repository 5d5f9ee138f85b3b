"""Remote files copied to local scratch one file ahead of a native tf.data reader.

TensorFlow cannot read hdfs:// itself, and framing records in Python costs
~40% of the input pipeline's throughput. Copying each file to local disk
(streamed, one file ahead of the reader) lets tf.data's C++ readers do the
work while the next file downloads. Disk stays bounded: a file is deleted as
soon as the reader has read it to the end, so a pipeline holds at most two files
(the one being read and the next, as `prefetch(1)` asks for file k+1 only
once the reader has taken file k). Scratch directories are removed at exit,
on failure and, when a killed process left one behind, by the next process.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from kubetrain_trainer.data import fs

log = logging.getLogger(__name__)

#: Where local copies go (an emptyDir in a pod); default: the system temp dir.
SCRATCH_DIR_ENV = "KUBETRAIN_SCRATCH_DIR"
#: Bytes one pipeline may hold on scratch at once (two files: reading + next).
SCRATCH_BYTES_ENV = "KUBETRAIN_SCRATCH_BYTES"
DEFAULT_BUDGET = 2 << 30
PREFIX = "kubetrain-copyahead-"

_lock = threading.Lock()
_ours: set[Path] = set()
_remote: dict[str, str] = {}  # local copy -> remote file
_reading: dict[str, str] = {}  # local copies a reader has open -> remote file


def peak_bytes(sizes: list[int]) -> int:
    """Most scratch bytes a pass over files of `sizes` holds at once: two adjacent files."""
    if len(sizes) < 2:
        return sum(sizes)
    return max(a + b for a, b in itertools.pairwise(sizes))


def budget(root: Path) -> int:
    """The scratch budget: the configured bytes, or less when the disk has less free."""
    configured = int(os.environ.get(SCRATCH_BYTES_ENV) or DEFAULT_BUDGET)
    root.mkdir(parents=True, exist_ok=True)
    return min(configured, shutil.disk_usage(root).free)


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_DIR_ENV) or tempfile.gettempdir())


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(root: Path) -> None:
    """Remove scratch directories left by processes that are gone.

    A restarted container keeps its emptyDir and may get the same pid, so our
    own pid's directories are stale too unless this process made them.
    """
    for path in root.glob(f"{PREFIX}*"):
        pid = path.name.removeprefix(PREFIX).partition("-")[0]
        if not pid.isdigit():
            continue
        mine = int(pid) == os.getpid()
        if (mine and path not in _ours) or (not mine and not _owner_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)


def _new_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        sweep_stale(root)
        path = root / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        _ours.add(path)
    atexit.register(shutil.rmtree, path, True)
    return path


def _download(remote: str, local: Path) -> None:
    with open(local, "wb") as out:
        for chunk in fs.filesystem(remote).stream(remote):
            out.write(chunk)


def reading() -> list[str]:
    """The remote files whose local copies a reader of this process has open now."""
    with _lock:
        return sorted(set(_reading.values()))


class CopyAhead:
    """The local copies of `files` for one pipeline, in order, each pass in its own directory.

    Each copy is deleted once its reader reaches its end (a hook after the
    reader), so deletion never depends on tf.data's timing.
    """

    def __init__(self, files: list[str], directory: Path) -> None:
        self.files = files
        self.directory = directory
        self._finished_passes: list[Path] = []

    def paths(self) -> Iterator[str]:
        """One pass: the local path of each file, yielded once it is fully on disk."""
        for old in self._finished_passes:
            shutil.rmtree(old, ignore_errors=True)
        self._finished_passes.clear()
        pass_dir = self.directory / uuid.uuid4().hex[:8]
        pass_dir.mkdir()
        try:
            for i, remote in enumerate(self.files):
                local = pass_dir / f"{i:06d}-{fs.split(remote)[1]}"
                _download(remote, local)
                with _lock:
                    _remote[str(local)] = remote
                yield str(local)
        except BaseException:
            # Abandoned (GeneratorExit) or failed: nobody reads this pass any more.
            self._forget(pass_dir)
            shutil.rmtree(pass_dir, ignore_errors=True)
            raise
        self._finished_passes.append(pass_dir)

    @staticmethod
    def _forget(pass_dir: Path) -> None:
        with _lock:
            for local in [k for k in _remote if Path(k).parent == pass_dir]:
                _remote.pop(local, None)
                _reading.pop(local, None)

    @staticmethod
    def started(local: tf.Tensor) -> tf.Tensor:
        name = local.numpy().decode()
        with _lock:
            _reading[name] = _remote.get(name, name)
        return local

    @staticmethod
    def finished(local: tf.Tensor) -> tf.Tensor:
        name = local.numpy().decode()
        with _lock:
            _reading.pop(name, None)
            _remote.pop(name, None)
        Path(name).unlink(missing_ok=True)
        return local

    def read(self, local: tf.Tensor, reader: Callable[[tf.Tensor], tf.data.Dataset]) -> Any:
        """`reader(local)` between a hook that marks the file open and one that deletes it."""

        def hook(fn: Callable[[tf.Tensor], tf.Tensor]) -> tf.data.Dataset:
            ds = tf.data.Dataset.from_tensors(local)
            return ds.map(lambda p: tf.ensure_shape(tf.py_function(fn, [p], tf.string), []))

        body = hook(self.started).flat_map(reader)
        return body.concatenate(hook(self.finished).filter(lambda _: False))


def dataset(
    files: list[str], reader: Callable[[tf.Tensor], tf.data.Dataset], directory: Path | None = None
) -> tf.data.Dataset:
    """`reader(local_path)` of each remote file in order, copied one file ahead.

    `reader` must yield scalar strings (serialized records or lines).
    """
    copies = CopyAhead(files, directory or _new_dir(scratch_root()))
    names = tf.data.Dataset.from_generator(
        copies.paths, output_signature=tf.TensorSpec([], tf.string)
    )
    # One file ahead: the reader's file plus the next one bound the disk used.
    return names.prefetch(1).flat_map(lambda local: copies.read(local, reader))
