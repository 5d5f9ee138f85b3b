"""Accelerator set-up that must happen before TensorFlow touches a device."""

from __future__ import annotations

import logging

from kubetrain_operator.api import TrainingSpec

log = logging.getLogger(__name__)


def gpu_count() -> int:
    """GPUs visible to this process (listing them does not initialise them)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def mixed_precision_policy(gpus: int, tpu: bool) -> str:
    """float16 on GPUs (tensor cores, loss scaling), bfloat16 on TPUs and CPUs."""
    return "mixed_float16" if gpus and not tpu else "mixed_bfloat16"


def setup(
    training: TrainingSpec,
    memory_growth: bool = True,
    tpu: bool = False,
    keras_modules: tuple[str, ...] = ("keras",),
) -> int:
    """Enable GPU memory growth and the mixed precision policy; return GPU count.

    Memory growth keeps one process from taking every GPU's memory, which is
    what lets several replicas share a machine (and `kubetrain run` use GPUs).

    Args:
        training: the spec's training block.
        memory_growth: allocate GPU memory as needed instead of all at once.
        tpu: the job runs on a TPU (mixed precision is then bfloat16).
        keras_modules: the Keras libraries whose global policy to set.
    """
    import importlib

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        if memory_growth:
            tf.config.experimental.set_memory_growth(gpu, True)
    if training.mixed_precision:
        policy = mixed_precision_policy(len(gpus), tpu)
        for name in keras_modules:
            importlib.import_module(name).mixed_precision.set_global_policy(policy)
        log.info("mixed precision policy %s", policy)
    log.info("visible GPUs: %d", len(gpus))
    return len(gpus)
