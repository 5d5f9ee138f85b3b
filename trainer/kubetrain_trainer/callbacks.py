"""Keras callbacks, for Keras 3 and for tf_keras (parameter_server).

The two libraries have separate `Callback` base classes, so each callback is a
plain class of hooks combined with the base class of the library in use.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from kubetrain_trainer import checkpoints, snapshots

log = logging.getLogger(__name__)

# Workers of one group differ by at most one saved epoch (see checkpoints.agreed_epoch).
BACKUPS_KEPT = 2
# The evaluator always takes the newest; a few more let a slow one finish reading.
EVAL_CHECKPOINTS_KEPT = 3


class _BackupHooks:
    """Saves this worker's weights and optimizer state at the end of each epoch.

    The weights are copied on the training thread, at the same point of every
    epoch on every worker (reading variables may be a collective), and written
    to disk on a background thread, so the next epoch need not wait for h5py
    and the filesystem. Training ends only once the last write is done.
    """

    def __init__(self, directory: str, keep: int) -> None:
        super().__init__()
        self.directory = directory
        self.writer = checkpoints.BackgroundWriter(directory, keep)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.writer.submit(snapshots.take(self.model), epoch + 1)  # type: ignore[attr-defined]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.writer.wait()


def with_base(hooks: type, keras_module: ModuleType) -> type:
    """`hooks` as a callback class of `keras_module` (keras or tf_keras)."""
    return type(hooks.__name__.lstrip("_"), (hooks, keras_module.callbacks.Callback), {})


def backup(keras_module: ModuleType, directory: str) -> Any:
    """This worker's per-epoch backup (restored with `checkpoints.resume`)."""
    return with_base(_BackupHooks, keras_module)(directory, BACKUPS_KEPT)


def eval_checkpoints(keras_module: ModuleType, directory: str) -> Any:
    """The chief's per-epoch checkpoints that the evaluator replica evaluates."""
    return with_base(_BackupHooks, keras_module)(directory, EVAL_CHECKPOINTS_KEPT)
