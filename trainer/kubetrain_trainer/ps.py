"""ParameterServerStrategy: the chief coordinates, workers and ps only serve.

Keras 3's `fit` does not support ParameterServerStrategy; tf_keras' does,
with a `DatasetCreator` whose function each worker runs to build its own
input. The chief trains (train.py, with `keras=tf_keras`); workers and
parameter servers start a `tf.distribute.Server` and serve until the chief
has finished (peers.py), so they never outlive the job.

The dataset function is traced on the chief and its graph runs on the
workers: input must be TFRecord files that every worker can open by path
(a mounted volume; the same disk locally). Readers that run Python on the
chief (Parquet, CSV, hdfs://) cannot run there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kubetrain_operator.api import DataSpec, TrainingSpec
from kubetrain_trainer import peers
from kubetrain_trainer.config import ConfigError, TrainerConfig
from kubetrain_trainer.data import files as data_files
from kubetrain_trainer.data import fs, pipeline

log = logging.getLogger(__name__)


def serve(cfg: TrainerConfig) -> None:
    """Run this worker's or ps' server until the chief has finished."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=cfg.task_type.value,
        task_index=cfg.task_index,
        protocol="grpc",
        start=True,
    )
    log.info("parameter_server: %s serving", cfg.worker_id)
    peers.wait_for_reporter(cfg)


def strategy() -> Any:
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.ParameterServerStrategy(resolver)


@dataclass(frozen=True)
class Input:
    """A DatasetCreator and the steps of one pass over its records."""

    dataset: Any
    steps: int
    global_batch_size: int


def check_data(data: DataSpec) -> None:
    """Raises ConfigError for input the workers cannot read by themselves."""
    for uri in filter(None, (data.train, data.validation)):
        if data.format != "tfrecord" or fs.is_remote(uri):
            raise ConfigError(
                f"spec.data: parameter_server workers read TFRecord files by path "
                f"(a mounted volume), got format {data.format} at {uri}"
            )


def make_input(data: DataSpec, training: TrainingSpec, uri: str, shuffle: bool) -> Input:
    """One batch of batchSizePerReplica per step, each worker reading its files.

    Raises:
        DataError: no input files, or fewer records than one batch.
    """
    import tensorflow as tf
    import tf_keras

    fmt = pipeline.FORMATS[data.format]
    files = data_files.list_files(uri)
    records = sum(pipeline.count_records(fmt, files, data).values())
    batch = training.batch_size_per_replica
    steps = records // batch
    if steps < 1:
        raise data_files.DataError(
            f"{uri}: {records} records, fewer than one batch of {batch}; "
            "lower training.batchSizePerReplica or add data"
        )

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = data_files.shard(files, ctx.num_input_pipelines, ctx.input_pipeline_id)
        ds = fmt.dataset(shard.files, data)
        if shuffle and data.shuffle_buffer:
            ds = ds.shuffle(data.shuffle_buffer, seed=training.seed)
        ds = ds.repeat().batch(batch, drop_remainder=True)
        if shard.stride > 1:
            ds = ds.shard(shard.stride, shard.offset)
        return fmt.parse(ds, data).prefetch(tf.data.AUTOTUNE)

    return Input(tf_keras.utils.experimental.DatasetCreator(dataset_fn), steps, batch)
