"""Choosing and creating the tf.distribute strategy.

`choose` is pure (spec + TF_CONFIG + device counts -> a decision with the
reason), so the rules are unit-tested without accelerators; `create` does the
TensorFlow work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kubetrain_operator.api import Strategy, TPUSpec, TrainingJobSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """The strategy to build and why it was picked."""

    strategy: Strategy
    reason: str


def choose(spec: TrainingJobSpec, cluster: dict[str, list[str]], gpus: int) -> Choice:
    """Pick the strategy for `spec.strategy: auto` (or confirm an explicit one).

    Args:
        spec: the job spec.
        cluster: TF_CONFIG's cluster.
        gpus: GPUs visible to this process.
    """
    if spec.strategy != Strategy.AUTO:
        return Choice(Strategy(spec.strategy), "set in spec.strategy")
    if spec.tpu is not None:
        return Choice(Strategy.TPU, "spec.tpu is set")
    if cluster.get("ps"):
        return Choice(Strategy.PARAMETER_SERVER, f"{len(cluster['ps'])} ps replicas")
    members = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if members > 1:
        return Choice(Strategy.MULTI_WORKER_MIRRORED, f"{members} workers in TF_CONFIG")
    if gpus > 1:
        return Choice(Strategy.MIRRORED, f"one worker with {gpus} GPUs")
    return Choice(Strategy.ONE_DEVICE, "one worker with at most one device")


def create(choice: Choice, gpus: int, tpu_spec: TPUSpec | None = None):
    """Build the chosen strategy (it reads TF_CONFIG itself).

    Raises:
        ValueError: strategy tpu without a TPU spec.
        TPUConnectError: the TPU does not answer in time.
    """
    import tensorflow as tf

    log.info("strategy %s: %s", choice.strategy.value, choice.reason)
    if choice.strategy == Strategy.TPU:
        from kubetrain_trainer import tpu

        if tpu_spec is None:
            raise ValueError("strategy tpu needs spec.tpu")
        return tpu.create_strategy(tpu_spec)
    if choice.strategy == Strategy.PARAMETER_SERVER:
        from kubetrain_trainer import ps

        log.info("parameter_server trains with tf_keras: Keras 3 fit does not support it")
        return ps.strategy()
    if choice.strategy == Strategy.MULTI_WORKER_MIRRORED:
        impl = (
            tf.distribute.experimental.CommunicationImplementation.NCCL
            if gpus
            else tf.distribute.experimental.CommunicationImplementation.RING
        )
        log.info("collectives: %s (%s)", impl.name, "GPUs" if gpus else "CPU only")
        options = tf.distribute.experimental.CommunicationOptions(implementation=impl)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if choice.strategy == Strategy.MIRRORED:
        return tf.distribute.MirroredStrategy()
    if choice.strategy == Strategy.ONE_DEVICE:
        if gpus:
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        # CPU only: the default strategy. OneDeviceStrategy("/cpu:0") adds nothing
        # here but per-step cost: its distributed dataset feeds every batch through
        # a MultiDeviceIterator (a GeneratorDataset, which also turns off tf.data's
        # graph optimizations) and `fit` wraps each step in strategy.run + reduce.
        log.info("one_device on CPU: the default strategy (no per-step distribution cost)")
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {choice.strategy.value!r}")
