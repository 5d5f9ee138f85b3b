"""Connecting to a Cloud TPU and building TPUStrategy, with a timeout of our own.

`tf.config.experimental_connect_to_cluster` waits for minutes, silently, when
nothing answers at the TPU's address (measured: > 3 min). A job with a wrong
address or a TPU that never came up must fail with a message that names both,
within `spec.tpu.connectTimeoutSeconds`. TensorFlow offers no way to cancel
the call, so it runs in a daemon thread that is abandoned on timeout (`HUNG`
tells the entry point to exit without waiting for it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubetrain_operator.api import TPUSpec
from kubetrain_trainer.config import ConfigError

log = logging.getLogger(__name__)

#: True once a connection attempt was abandoned in a thread that may never return.
HUNG = False


class TPUConnectError(ConfigError):
    """No TPU answered at the resolved address within the configured time."""


def address(spec: TPUSpec, env: Mapping[str, str] | None = None) -> str | None:
    """The TPU address for TPUClusterResolver, or None to let it find the TPU itself.

    spec.tpu.address wins, then KUBETRAIN_TPU_ADDRESS (the operator sets it from
    the spec); a bare `host:port` becomes `grpc://host:port`. None means the
    resolver's own discovery: TPU_NAME, the GCE metadata server, or the TPU VM
    the pod runs on.
    """
    env = os.environ if env is None else env
    value = spec.address or env.get("KUBETRAIN_TPU_ADDRESS")
    if not value:
        return None
    return value if "://" in value else f"grpc://{value}"


def _connect(tpu: str | None) -> Any:
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return resolver


def connect(spec: TPUSpec, env: Mapping[str, str] | None = None) -> Any:
    """Resolve the TPU, connect to it and initialise it, all within the timeout.

    Returns:
        The TPUClusterResolver, ready for TPUStrategy.

    Raises:
        TPUConnectError: nothing answered within spec.tpu.connectTimeoutSeconds,
            or the resolver failed; the message names the address and the timeout.
    """
    global HUNG
    tpu = address(spec, env)
    where = tpu or "the address TPUClusterResolver discovers (TPU_NAME / metadata)"
    timeout = spec.connect_timeout_seconds
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            result["resolver"] = _connect(tpu)
        except Exception as err:
            result["error"] = err

    log.info("connecting to the TPU at %s (timeout %d s)", where, timeout)
    started = time.monotonic()
    thread = threading.Thread(target=attempt, name="tpu-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        HUNG = True
        raise TPUConnectError(
            f"spec.tpu: no TPU answered at {where} within {timeout} s "
            "(spec.tpu.connectTimeoutSeconds); check spec.tpu.address and that the TPU "
            "is up and reachable from this pod"
        )
    if "error" in result:
        err = result["error"]
        raise TPUConnectError(
            f"spec.tpu: cannot use the TPU at {where}: {type(err).__name__}: {err}"
        ) from err
    log.info("TPU at %s ready in %.1f s", where, time.monotonic() - started)
    return result["resolver"]


def create_strategy(spec: TPUSpec, env: Mapping[str, str] | None = None) -> Any:
    """TPUStrategy on the connected and initialised TPU."""
    import tensorflow as tf

    resolver = connect(spec, env)
    strategy = tf.distribute.TPUStrategy(resolver)
    log.info("TPUStrategy with %d replicas", strategy.num_replicas_in_sync)
    return strategy
