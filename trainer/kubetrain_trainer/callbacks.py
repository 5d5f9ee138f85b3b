"""Keras callbacks, for Keras 3 and for tf_keras (parameter_server).

The two libraries have separate `Callback` base classes, so each callback is a
plain class of hooks combined with the base class of the library in use.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from kubetrain_trainer import checkpoints

log = logging.getLogger(__name__)

# Workers of one group differ by at most one saved epoch (see checkpoints.agreed_epoch).
BACKUPS_KEPT = 2
# The evaluator always takes the newest; a few more let a slow one finish reading.
EVAL_CHECKPOINTS_KEPT = 3


class _BackupHooks:
    """Saves this worker's weights and optimizer state at the end of each epoch."""

    def __init__(self, directory: str, keep: int) -> None:
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        checkpoints.save(self.model, self.directory, epoch + 1, self.keep)  # type: ignore[attr-defined]


def with_base(hooks: type, keras_module: ModuleType) -> type:
    """`hooks` as a callback class of `keras_module` (keras or tf_keras)."""
    return type(hooks.__name__.lstrip("_"), (hooks, keras_module.callbacks.Callback), {})


def backup(keras_module: ModuleType, directory: str) -> Any:
    """This worker's per-epoch backup (restored with `checkpoints.resume`)."""
    return with_base(_BackupHooks, keras_module)(directory, BACKUPS_KEPT)


def eval_checkpoints(keras_module: ModuleType, directory: str) -> Any:
    """The chief's per-epoch checkpoints that the evaluator replica evaluates."""
    return with_base(_BackupHooks, keras_module)(directory, EVAL_CHECKPOINTS_KEPT)
