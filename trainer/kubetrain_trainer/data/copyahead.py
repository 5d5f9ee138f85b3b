"""Remote files copied to local scratch one file ahead of a native tf.data reader.

TensorFlow cannot read hdfs:// itself, and framing records in Python costs
~40% of the input pipeline's throughput. Copying each file to local disk
(streamed, one file ahead of the reader) lets tf.data's C++ readers do the
work while the next file downloads. Disk stays bounded: a file is deleted as
soon as the reader has moved past it, so a pipeline holds at most two files
(the one being read and the next). Scratch directories are removed at exit
and, when a killed process left one behind, by the next process; a failed
copy removes all but the file the reader is on, which the error follows.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import tensorflow as tf

from kubetrain_trainer.data import fs

#: Where local copies go (an emptyDir in a pod); default: the system temp dir.
SCRATCH_DIR_ENV = "KUBETRAIN_SCRATCH_DIR"
#: Bytes one pipeline may hold on scratch at once (two files: reading + next).
SCRATCH_BYTES_ENV = "KUBETRAIN_SCRATCH_BYTES"
DEFAULT_BUDGET = 2 << 30
PREFIX = "kubetrain-copyahead-"

_lock = threading.Lock()
_ours: set[Path] = set()
#: CopyAhead -> the remote files its reader took last, newest last. More than
#: the current one: after a read error tf.data's prefetching may move on a file
#: or two before the error reaches the training loop.
_reading: dict[int, collections.deque[str]] = {}
RECENT_FILES = 3


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
    except PermissionError:  # alive, someone else's
        pass
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


def remove_scratch() -> None:
    """Remove this process's scratch directories now (for exits that skip atexit)."""
    with _lock:
        for path in _ours:
            shutil.rmtree(path, ignore_errors=True)


def _download(remote: str, local: Path) -> None:
    with open(local, "wb") as out:
        for chunk in fs.filesystem(remote).stream(remote):
            out.write(chunk)


def reading() -> list[str]:
    """The remote files the copy-ahead readers of this process are on or were on just before."""
    with _lock:
        return sorted({name for recent in _reading.values() for name in recent})


def _forget(key: int) -> None:
    with _lock:
        _reading.pop(key, None)


class CopyAhead:
    """The local copies of `files` for one pipeline, in order, each pass in its own directory.

    Behind `prefetch(1)` and a sequential `flat_map`, the generator is asked
    for file k+1 only once the reader has taken file k: so being resumed after
    yielding file k means file k-1 is read to its end and can go. Nothing per
    record is added to the reader (an end-of-file hook per file, as a nested
    dataset, cost ~10% of the throughput). The last file of a pass stays until
    the next pass or exit, as the reader may not have opened it yet.
    """

    def __init__(self, files: list[str], directory: Path) -> None:
        self.files = files
        self.directory = directory
        self._finished_passes: list[Path] = []
        weakref.finalize(self, _forget, id(self))

    def paths(self) -> Iterator[str]:
        """One pass: the local path of each file, yielded once it is fully on disk."""
        # A new pass starts only after the previous one was read to its end.
        for old in self._finished_passes:
            shutil.rmtree(old, ignore_errors=True)
        self._finished_passes.clear()
        pass_dir = self.directory / uuid.uuid4().hex[:8]
        pass_dir.mkdir()
        previous: Path | None = None
        try:
            for i, remote in enumerate(self.files):
                local = pass_dir / f"{i:06d}-{fs.split(remote)[1]}"
                _download(remote, local)
                if i == 0:
                    self._now_reading(remote)
                yield str(local)
                self._now_reading(remote)
                if previous is not None:
                    previous.unlink(missing_ok=True)
                previous = local
        except GeneratorExit:
            # Abandoned: nobody reads this pass any more.
            _forget(id(self))
            shutil.rmtree(pass_dir, ignore_errors=True)
            raise
        except BaseException:
            # A failed copy. The reader may not have opened the file it just took
            # (`previous`), and the error reaches it only after that file: keep it
            # until this pipeline goes (or the process exits).
            for path in pass_dir.iterdir():
                if path != previous:
                    path.unlink(missing_ok=True)
            weakref.finalize(self, shutil.rmtree, pass_dir, True)
            raise
        self._finished_passes.append(pass_dir)

    def _now_reading(self, remote: str) -> None:
        with _lock:
            recent = _reading.setdefault(id(self), collections.deque(maxlen=RECENT_FILES))
            if not recent or recent[-1] != remote:
                recent.append(remote)


def dataset(
    files: list[str], reader: Callable[[tf.Tensor], tf.data.Dataset], directory: Path | None = None
) -> tf.data.Dataset:
    """`reader(local_path)` of each remote file in order, copied one file ahead."""
    copies = CopyAhead(files, directory or _new_dir(scratch_root()))
    names = tf.data.Dataset.from_generator(
        copies.paths, output_signature=tf.TensorSpec([], tf.string)
    )
    # Exactly one file ahead: the deletion timing in `paths` depends on it.
    return names.prefetch(1).flat_map(reader)
