"""One replica's training run: strategy, model, data, fit, export."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from types import ModuleType
from typing import Any

from kubetrain_operator.api import ReplicaType, Strategy
from kubetrain_trainer import (
    callbacks,
    checkpoints,
    devices,
    export,
    keras_compat,
    models,
    peers,
    progress,
    ps,
    termination,
)
from kubetrain_trainer import strategy as strategies
from kubetrain_trainer.config import ConfigError, TrainerConfig
from kubetrain_trainer.data import fs, pipeline

log = logging.getLogger(__name__)


def backup_root(cfg: TrainerConfig) -> str:
    """The job's checkpoint directory: one sub-directory per worker, plus `eval/`.

    Keyed by the job's UID, so a new job with an old job's name starts fresh
    instead of "resuming" a finished run.
    """
    base = cfg.job.spec.output.checkpoint_dir or str(cfg.work_dir / "backup")
    return fs.join(base, cfg.job.metadata.uid or cfg.name)


def backup_dir(cfg: TrainerConfig) -> str:
    """This worker's own backup directory (workers never share one)."""
    return fs.join(backup_root(cfg), cfg.worker_id)


def eval_dir(cfg: TrainerConfig) -> str:
    """Where the reporter writes the per-epoch checkpoints the evaluator reads."""
    return fs.join(backup_root(cfg), "eval")


def tensorboard_dir(cfg: TrainerConfig) -> str | None:
    """`<modelDir>-logs`, beside the model: the export replaces modelDir as a whole.

    None when TensorBoard is off, or the model dir is remote (summaries are
    written by TensorFlow, which has no HDFS filesystem).

    Raises:
        ConfigError: TensorBoard is on but the tensorboard package, which
            tf.summary needs, is not installed.
    """
    output = cfg.job.spec.output
    if not output.tensorboard or not output.model_dir:
        return None
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "output.tensorboard: true needs the tensorboard package in the trainer image "
            "(tf.summary cannot write without it)"
        )
    if fs.is_remote(output.model_dir):
        log.warning("output.tensorboard: not written for a remote modelDir %s", output.model_dir)
        return None
    return output.model_dir.rstrip("/") + "-logs"


def group(cfg: TrainerConfig, choice: Strategy) -> list[str]:
    """Worker ids whose backups must agree on the epoch to resume from.

    Under parameter_server only the chief holds (and saves) the training state.
    """
    if choice == Strategy.PARAMETER_SERVER:
        return [cfg.worker_id]
    members = [f"{ReplicaType.CHIEF.value}-{i}" for i in range(len(cfg.cluster.get("chief", [])))]
    members += [
        f"{ReplicaType.WORKER.value}-{i}" for i in range(len(cfg.cluster.get("worker", [])))
    ]
    return members or [cfg.worker_id]


def keras_for(choice: Strategy) -> ModuleType:
    """tf_keras for parameter_server (Keras 3 cannot fit under it), else Keras 3."""
    if choice == Strategy.PARAMETER_SERVER:
        import tf_keras

        return tf_keras
    import keras

    return keras


def _strategy(cfg: TrainerConfig, choice: strategies.Choice, gpus: int) -> Any:
    if choice.strategy == Strategy.PARAMETER_SERVER and not cfg.cluster.get("chief"):
        raise ConfigError("spec.replicas.chief: parameter_server needs a chief to coordinate")
    if choice.strategy == Strategy.MULTI_WORKER_MIRRORED:
        keras_compat.apply()
    return strategies.create(choice, gpus, cfg.job.spec.tpu)


def _inputs(cfg: TrainerConfig, strategy: Any, choice: Strategy) -> tuple[Any, Any]:
    spec = cfg.job.spec
    data = spec.data
    assert data is not None
    if choice == Strategy.PARAMETER_SERVER:
        ps.check_data(data)
        train = ps.make_input(data, spec.training, data.train, shuffle=True)
        validation = (
            ps.make_input(data, spec.training, data.validation, shuffle=False)
            if data.validation
            else None
        )
        return train, validation
    workers = max(cfg.num_workers, 1)
    train = pipeline.make_input(
        strategy, data, spec.training, data.train, shuffle=True, num_workers=workers
    )
    validation = None
    if data.validation:
        validation = pipeline.make_input(
            strategy, data, spec.training, data.validation, False, workers
        )
    return train, validation


def has_watchers(cfg: TrainerConfig) -> bool:
    """Replicas that stop when they see the reporter succeed (ps, evaluator)."""
    return bool(cfg.cluster.get("ps")) or cfg.job.spec.replicas.count(ReplicaType.EVALUATOR) > 0


def run(cfg: TrainerConfig) -> dict[str, float]:
    """Train the job's model; return the final metrics.

    Raises:
        ConfigError: the job cannot run as configured.
        DataError: the input cannot be read.
    """
    spec = cfg.job.spec
    if spec.data is None:
        raise ConfigError("spec.data: task train needs data")
    logs = tensorboard_dir(cfg)
    choice = strategies.choose(spec, cfg.cluster, devices.gpu_count())
    keras = keras_for(choice.strategy)
    gpus = devices.setup(
        spec.training, tpu=choice.strategy == Strategy.TPU, keras_modules=(keras.__name__,)
    )
    strategy = _strategy(cfg, choice, gpus)
    log.info(
        "XLA jit_compile=%s (spec.training.jitCompile, passed explicitly: "
        "Keras 3 would default to 'auto')",
        spec.training.jit_compile,
    )
    keras.utils.set_random_seed(spec.training.seed)
    with strategy.scope():
        model = models.build(spec.model, spec.data, keras=keras)
        models.compile_model(model, spec.training, keras=keras)
        model.optimizer.build(model.trainable_variables)
        initial_epoch = checkpoints.resume(
            model, backup_root(cfg), cfg.worker_id, group(cfg, choice.strategy)
        )
    train, validation = _inputs(cfg, strategy, choice.strategy)
    steps = spec.training.steps_per_epoch or train.steps
    state = progress.ProgressState(spec.training.epochs, steps, train.global_batch_size)
    state.update(epoch=initial_epoch, step=initial_epoch * steps, resumedFromEpoch=initial_epoch)
    server = None
    if cfg.is_reporter and cfg.progress_port:
        server = progress.serve(state, cfg.progress_port)
    cbs: list[Any] = [
        callbacks.backup(keras, backup_dir(cfg)),
        progress.callback(state, keras, batches=choice.strategy != Strategy.PARAMETER_SERVER),
    ]
    if cfg.is_reporter and spec.replicas.count(ReplicaType.EVALUATOR):
        cbs.append(callbacks.eval_checkpoints(keras, eval_dir(cfg)))
    if logs and cfg.is_reporter:
        cbs.append(keras.callbacks.TensorBoard(logs))
    history = model.fit(
        train.dataset,
        epochs=spec.training.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
        validation_data=validation.dataset if validation else None,
        validation_steps=validation.steps if validation else None,
        callbacks=cbs,
        verbose=2 if cfg.is_reporter else 0,
    )
    metrics = {k: float(v[-1]) for k, v in history.history.items() if v}
    if cfg.is_reporter and spec.output.model_dir:
        path = export.export(model, cfg.job, spec.output.model_dir, metrics)
        log.info("model written to %s", path)
    state.update(state="succeeded", metrics=metrics)
    if cfg.is_reporter:
        print(json.dumps({"event": "finished", "metrics": metrics}), flush=True)
        termination.write_final_progress(state.snapshot())
    if server is not None:
        if has_watchers(cfg):
            time.sleep(peers.LINGER_SECONDS)
        server.shutdown()
    return metrics
