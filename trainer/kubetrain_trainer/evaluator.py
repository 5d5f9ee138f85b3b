"""The evaluator replica: evaluate each new checkpoint of the chief until the last.

Keras 3 has no SidecarEvaluator, so this is ours. The reporter (chief, else
worker 0) writes `epoch-<N>.weights.h5` into `<checkpoint root>/eval/` at the
end of every epoch (callbacks.eval_checkpoints); the evaluator polls that
directory, evaluates the newest checkpoint it has not seen on the validation
data, logs the metrics (and writes TensorBoard summaries when
output.tensorboard), and exits 0 once it has evaluated the final epoch. It is
never part of the training cluster, so it builds the model without a
distribution strategy. It also stops when the reporter has finished without
a final checkpoint (nothing more will come).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kubetrain_trainer import checkpoints, devices, models, peers, train
from kubetrain_trainer import strategy as strategies
from kubetrain_trainer.config import ConfigError, TrainerConfig
from kubetrain_trainer.data import pipeline

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def _summary_writer(cfg: TrainerConfig) -> Any:
    logs = train.tensorboard_dir(cfg)
    if logs is None:
        return None
    import tensorflow as tf

    return tf.summary.create_file_writer(f"{logs}/eval")


def run(cfg: TrainerConfig, poll: float = POLL_SECONDS) -> dict[str, float]:
    """Evaluate checkpoints until the final epoch's; return its metrics.

    Raises:
        ConfigError: there is no validation data to evaluate on.
    """
    spec = cfg.job.spec
    data = spec.data
    if data is None or not data.validation:
        raise ConfigError("spec.data.validation: the evaluator replica needs validation data")
    choice = strategies.choose(spec, cfg.cluster, devices.gpu_count())
    keras = train.keras_for(choice.strategy)
    devices.setup(spec.training, keras_modules=(keras.__name__,))
    import tensorflow as tf

    keras.utils.set_random_seed(spec.training.seed)
    model = models.build(spec.model, data, keras=keras)
    models.compile_model(model, spec.training, keras=keras)
    model.optimizer.build(model.trainable_variables)
    validation = pipeline.make_input(
        tf.distribute.get_strategy(), data, spec.training, data.validation, False, 1
    )
    directory = train.eval_dir(cfg)
    url = peers.reporter_url(cfg)
    watch = peers.ReporterWatch(url) if url else None
    writer = _summary_writer(cfg)
    epochs = spec.training.epochs
    log.info("evaluator: watching %s for %d epochs", directory, epochs)
    evaluated, metrics = 0, {}
    while evaluated < epochs:
        newest = checkpoints.latest_epoch(directory)
        if newest > evaluated:
            checkpoints.load(model, directory, newest)
            result = model.evaluate(
                validation.dataset, steps=validation.steps, return_dict=True, verbose=0
            )
            metrics = {k: float(v) for k, v in result.items()}
            evaluated = newest
            log.info("evaluated epoch %d: %s", newest, metrics)
            print(
                json.dumps({"event": "evaluated", "epoch": newest, "metrics": metrics}), flush=True
            )
            if writer is not None:
                with writer.as_default():
                    for name, value in metrics.items():
                        tf.summary.scalar(f"epoch_{name}", value, step=newest)
                writer.flush()
            continue
        if watch is not None and watch.done() and checkpoints.latest_epoch(directory) <= evaluated:
            log.warning(
                "the reporter finished with epoch %d of %d checkpointed: stopping",
                evaluated,
                epochs,
            )
            break
        time.sleep(poll)
    return metrics
