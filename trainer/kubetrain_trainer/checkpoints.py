"""Epoch checkpoints on any filesystem: per-worker backups and the evaluator's feed.

Each checkpoint is `epoch-<N>.weights.h5` (model and optimizer weights after
N finished epochs) followed by an empty `epoch-<N>.done` marker. The marker
is written last, so an epoch counts only when its weights are complete: a
process killed mid-save leaves no marker and the previous epoch stands.
Nothing is ever overwritten in place (HDFS cannot), and the weights are
written to a local temporary file that is then copied through the data
layer's filesystem, so the directory may be local, mounted or `hdfs://`.
During training the weights are copied at the epoch's end (`snapshots.take`)
and written by a `BackgroundWriter` while the next epoch runs.

Why not `keras.callbacks.BackupAndRestore`: it keeps one `latest.weights.h5`
per worker and writes the epoch number in a separate, later step. Workers of
a synchronous group that is killed between two workers' saves would resume
at different epochs and deadlock in their first collective; resuming at an
agreed epoch needs each worker to still have that epoch's weights.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

from kubetrain_trainer import outages, snapshots
from kubetrain_trainer.data import fs

log = logging.getLogger(__name__)

_DONE = re.compile(r"^epoch-(\d+)\.done$")


def weights_name(epoch: int) -> str:
    return f"epoch-{epoch:05d}.weights.h5"


def _done_name(epoch: int) -> str:
    return f"epoch-{epoch:05d}.done"


def saved_epochs(directory: str) -> list[int]:
    """Epochs with a complete checkpoint in `directory`, oldest first."""
    store = fs.filesystem(directory)
    info = store.info(directory)
    if info is None or not info.is_dir:
        return []
    epochs = []
    for entry in store.listdir(directory):
        match = _DONE.match(fs.split(entry.path)[1])
        if match:
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def latest_epoch(directory: str) -> int:
    """The newest complete epoch in `directory`; 0 when there is none."""
    return max(saved_epochs(directory), default=0)


def save(model: Any, directory: str, epoch: int, keep: int) -> str:
    """Take the model's weights now and write them (see `write`); returns the weights path."""
    return write(snapshots.take(model), directory, epoch, keep)


def write(snapshot: snapshots.Snapshot, directory: str, epoch: int, keep: int) -> str:
    """Write the weights after `epoch` finished epochs, then its marker.

    Keeps the newest `keep` checkpoints and removes older ones. Safe on a
    thread other than the training thread: `snapshot` already holds the values.

    Returns:
        The path of the weights file.

    Raises:
        HdfsUnavailableError: the directory is on HDFS and it went away mid-save.
    """
    with outages.retryable(directory, "checkpoint write"):
        return _write(snapshot, directory, epoch, keep)


def _write(snapshot: snapshots.Snapshot, directory: str, epoch: int, keep: int) -> str:
    store = fs.filesystem(directory)
    store.makedirs(directory)
    target = fs.join(directory, weights_name(epoch))
    done = fs.join(directory, _done_name(epoch))
    staging = fs.join(directory, f".{weights_name(epoch)}.tmp-{os.getpid()}")
    # A restarted group re-runs epochs it had saved on one worker only.
    store.delete(done)
    with tempfile.TemporaryDirectory(prefix="kubetrain-ckpt-") as tmp:
        local = os.path.join(tmp, weights_name(epoch))
        snapshot.write(local)
        with open(local, "rb") as src, store.create(staging) as out:
            shutil.copyfileobj(src, out, fs.CHUNK)
    store.delete(target)
    store.rename(staging, target)
    with store.create(done):
        pass
    for old in saved_epochs(directory)[:-keep]:
        store.delete(fs.join(directory, _done_name(old)))
        store.delete(fs.join(directory, weights_name(old)))
    return target


class BackgroundWriter:
    """Writes one directory's checkpoints off the training thread, one at a time.

    `submit` first waits for the previous write and re-raises its error, so
    epochs land in order, at most one is in flight, and a failed write (an
    HDFS outage) stops training at the next epoch end at the latest. The
    thread is not a daemon: a process that exits, even on an error, first
    finishes the write of an epoch it completed.
    """

    def __init__(self, directory: str, keep: int) -> None:
        self.directory = directory
        self.keep = keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, snapshot: snapshots.Snapshot, epoch: int) -> None:
        """Start writing `snapshot` as epoch `epoch` once the previous write is done."""
        self.wait()
        self._thread = threading.Thread(
            target=self._run, args=(snapshot, epoch), name=f"kubetrain-backup-{epoch}", daemon=False
        )
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight is done; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _run(self, snapshot: snapshots.Snapshot, epoch: int) -> None:
        try:
            write(snapshot, self.directory, epoch, self.keep)
        except BaseException as err:  # handed to the training thread by wait()
            self._error = err


def load(model: Any, directory: str, epoch: int) -> None:
    """Load the weights saved after `epoch` epochs (copied locally first)."""
    source = fs.join(directory, weights_name(epoch))
    with tempfile.TemporaryDirectory(prefix="kubetrain-ckpt-") as tmp:
        local = os.path.join(tmp, weights_name(epoch))
        with fs.filesystem(source).open(source) as src, open(local, "wb") as out:
            shutil.copyfileobj(src, out, fs.CHUNK)
        model.load_weights(local)


def agreed_epoch(saved: dict[str, list[int]]) -> int:
    """The epoch a restarted synchronous group resumes from: every worker's newest
    epoch, the smallest of them (0 when any worker has none).

    Workers save one after another at the end of an epoch, so a kill can land
    between two saves; they then differ by one epoch, and the older one is the
    newest that every worker has finished. Each keeps two checkpoints for that.
    """
    return min((max(epochs, default=0) for epochs in saved.values()), default=0)


def source_for(epoch: int, own: str, saved: dict[str, list[int]], dirs: dict[str, str]) -> str:
    """The directory to restore `epoch` from: our own, else any worker's that has it.

    Synchronous training keeps every worker's weights identical, so another
    worker's checkpoint of the same epoch is the same state.
    """
    candidates: Iterable[str] = [own, *sorted(dirs)]
    for member in candidates:
        if epoch in saved.get(member, []):
            return dirs[member]
    raise FileNotFoundError(f"no worker has a checkpoint of epoch {epoch}")


def resume(model: Any, root: str, me: str, members: list[str]) -> int:
    """Restore the agreed epoch of the group into `model`; return it (0: a fresh start).

    Args:
        model: a built model whose optimizer is built too (its state is restored).
        root: the job's backup directory, with one sub-directory per member.
        me: this worker's id (`worker-1`).
        members: every worker id of the synchronous group.
    """
    dirs = {m: fs.join(root, m) for m in members}
    saved = {m: saved_epochs(d) for m, d in dirs.items()}
    epoch = agreed_epoch(saved)
    newest = ", ".join(f"{m}={max(e, default=0)}" for m, e in sorted(saved.items()))
    if epoch == 0:
        log.info("no epoch finished by every worker (%s): starting at epoch 0", newest)
        return 0
    source = source_for(epoch, me, saved, dirs)
    load(model, source, epoch)
    log.info(
        "resuming from epoch %d, the newest finished by every worker (%s), weights from %s",
        epoch,
        newest,
        source,
    )
    return epoch
