"""Accelerator set-up that must happen before TensorFlow touches a device."""

from __future__ import annotations

import logging

from kubetrain_operator.api import TrainingSpec

log = logging.getLogger(__name__)


def setup(training: TrainingSpec, memory_growth: bool = True) -> int:
    """Enable GPU memory growth and the mixed precision policy; return GPU count.

    Memory growth keeps one process from taking every GPU's memory, which is
    what lets several replicas share a machine (and `kubetrain run` use GPUs).
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        if memory_growth:
            tf.config.experimental.set_memory_growth(gpu, True)
    if training.mixed_precision:
        policy = "mixed_float16" if gpus else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
        log.info("mixed precision policy %s", policy)
    log.info("visible GPUs: %d", len(gpus))
    return len(gpus)
