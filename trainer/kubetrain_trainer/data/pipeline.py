"""Per-worker input pipelines under a tf.distribute strategy.

Each worker builds its own pipeline (`distribute_datasets_from_function`),
reading only its shard, batched at the per-replica batch size. Every worker
must run the same number of steps or the collectives deadlock, so the steps
per epoch are computed from record counts the same way on every worker and
the data repeats. The format (TFRecord, Parquet, CSV) only decides how a
shard's files become records and records become (features, label); listing,
sharding, shuffling and batching are the same for all, local or HDFS.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import tensorflow as tf

from kubetrain_operator.api import DataSpec, TrainingSpec
from kubetrain_trainer.data import csv, parquet, tfrecord
from kubetrain_trainer.data import files as data_files

#: Each module has count(path, data), dataset(files, data) -> one element per
#: record, and parse(batches, data) -> (features, label) batches.
FORMATS: dict[str, ModuleType] = {"tfrecord": tfrecord, "parquet": parquet, "csv": csv}


@dataclass(frozen=True)
class Input:
    """A distributed dataset and how many steps make one pass."""

    dataset: Any
    steps: int
    global_batch_size: int


def _records(data: DataSpec, shard: data_files.Shard, counts: dict[str, int]) -> int:
    return sum(counts[f] for f in shard.files) // shard.stride


def steps_per_epoch(
    data: DataSpec, files: list[str], counts: dict[str, int], pipelines: int, batch: int
) -> int:
    """Steps every worker can take: the smallest shard decides.

    Raises:
        DataError: a shard has fewer records than one batch.
    """
    per_shard = [
        _records(data, data_files.shard(files, pipelines, i), counts) for i in range(pipelines)
    ]
    steps = min(per_shard) // batch
    if steps < 1:
        raise data_files.DataError(
            f"{data.train}: a worker's shard has {min(per_shard)} records, fewer than one "
            f"batch of {batch}; lower training.batchSizePerReplica or add data"
        )
    return steps


def count_records(fmt: ModuleType, files: list[str], data: DataSpec) -> dict[str, int]:
    """Records per file, a few files at a time (remote counts are mostly waiting on I/O)."""
    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        return dict(zip(files, pool.map(lambda f: fmt.count(f, data), files), strict=True))


def make_input(
    strategy: tf.distribute.Strategy,
    data: DataSpec,
    training: TrainingSpec,
    uri: str,
    shuffle: bool,
    num_workers: int,
) -> Input:
    """The distributed dataset of `uri` for `fit`/`evaluate`, with its steps."""
    fmt = FORMATS[data.format]
    files = data_files.list_files(uri)
    counts = count_records(fmt, files, data)
    per_replica = training.batch_size_per_replica
    global_batch = per_replica * strategy.num_replicas_in_sync
    pipelines = max(1, num_workers)
    local_batch = global_batch // pipelines
    steps = steps_per_epoch(data, files, counts, pipelines, local_batch)

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = data_files.shard(files, ctx.num_input_pipelines, ctx.input_pipeline_id)
        records = fmt.dataset(shard.files, data)
        if shuffle and data.shuffle_buffer:
            records = records.shuffle(data.shuffle_buffer, seed=training.seed)
        batch = ctx.get_per_replica_batch_size(global_batch)
        ds = records.repeat().batch(batch, drop_remainder=True)
        if shard.stride > 1:
            ds = ds.shard(shard.stride, shard.offset)
        return fmt.parse(ds, data).prefetch(tf.data.AUTOTUNE)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    return Input(dataset, steps, global_batch)
