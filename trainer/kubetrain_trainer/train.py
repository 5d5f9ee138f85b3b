"""One replica's training run: strategy, model, data, fit, export."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from kubetrain_operator.api import Strategy
from kubetrain_trainer import devices, export, keras_compat, models, progress
from kubetrain_trainer import strategy as strategies
from kubetrain_trainer.config import ConfigError, TrainerConfig
from kubetrain_trainer.data import pipeline

log = logging.getLogger(__name__)


def backup_dir(cfg: TrainerConfig) -> str:
    """This worker's own BackupAndRestore directory (a shared one breaks on h5 locks).

    Keyed by the job's UID, so a new job with an old job's name starts fresh
    instead of "resuming" a finished run.
    """
    base = cfg.job.spec.output.checkpoint_dir or str(cfg.work_dir / "backup")
    run = cfg.job.metadata.uid or cfg.name
    return os.path.join(base, run, cfg.worker_id)


def run(cfg: TrainerConfig) -> dict[str, float]:
    """Train the job's model; return the final metrics.

    Raises:
        ConfigError: the job cannot run as configured.
        DataError: the input cannot be read.
    """
    import keras

    spec = cfg.job.spec
    if spec.data is None:
        raise ConfigError("spec.data: task train needs data")
    gpus = devices.setup(spec.training)
    choice = strategies.choose(spec, cfg.cluster, gpus)
    if choice.strategy == Strategy.MULTI_WORKER_MIRRORED:
        keras_compat.apply()
    strategy = strategies.create(choice, gpus)
    keras.utils.set_random_seed(spec.training.seed)
    with strategy.scope():
        model = models.build(spec.model, spec.data)
        models.compile_model(model, spec.training)
    workers = max(cfg.num_workers, 1)
    train = pipeline.make_input(
        strategy, spec.data, spec.training, spec.data.train, shuffle=True, num_workers=workers
    )
    validation = None
    if spec.data.validation:
        validation = pipeline.make_input(
            strategy, spec.data, spec.training, spec.data.validation, False, workers
        )
    steps = spec.training.steps_per_epoch or train.steps
    state = progress.ProgressState(spec.training.epochs, steps, train.global_batch_size)
    server = None
    if cfg.is_reporter and cfg.progress_port:
        server = progress.serve(state, cfg.progress_port)
    callbacks: list[Any] = [
        keras.callbacks.BackupAndRestore(backup_dir(cfg), delete_checkpoint=False),
        progress.ProgressCallback(state),
    ]
    if spec.output.tensorboard and spec.output.model_dir and cfg.is_reporter:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(spec.output.model_dir, "logs")))
    history = model.fit(
        train.dataset,
        epochs=spec.training.epochs,
        steps_per_epoch=steps,
        validation_data=validation.dataset if validation else None,
        validation_steps=validation.steps if validation else None,
        callbacks=callbacks,
        verbose=2 if cfg.is_reporter else 0,
    )
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    if cfg.is_reporter and spec.output.model_dir:
        path = export.export(model, cfg.job, spec.output.model_dir, metrics)
        log.info("model written to %s", path)
    state.update(state="succeeded", metrics=metrics)
    if cfg.is_reporter:
        print(json.dumps({"event": "finished", "metrics": metrics}), flush=True)
    if server is not None:
        server.shutdown()
    return metrics
