"""User model entry points that misbehave on purpose, for the reliability tests.

Pods import them through PYTHONPATH, exactly as a user's own package would be.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def _model() -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def raises(**_: Any) -> Any:
    """A builder with a bug, as users write them."""
    raise ValueError("layer sizes do not add up: 64 != 10")


def hangs_after_training(marker: str, **_: Any) -> Any:
    """Workers (not the chief) train normally, then never exit.

    A non-daemon thread outlives the main thread, so the interpreter waits
    for it forever after `main()` returns: the "chief done, workers hang"
    case of TFJob's tracker. The marker says training really ended first.
    """
    if os.environ.get("KUBETRAIN_REPLICA_TYPE") == "worker":

        def hang() -> None:
            threading.main_thread().join()
            index = os.environ.get("KUBETRAIN_REPLICA_INDEX", "?")
            Path(marker).with_name(f"hanging-worker-{index}").write_text("trained, hanging\n")
            threading.Event().wait()

        threading.Thread(target=hang, name="hang-after-training").start()
    return _model()


def digests_of_secrets(marker: str, **_: Any) -> Any:
    """Prove the keytab and token reached the trainer, without repeating them.

    Writes SHA-256 digests of the mounted keytab ($KUBETRAIN_KEYTAB) and of
    the token in $HADOOP_TOKEN, so a test can check delivery and still grep
    every log and status for the secrets themselves.
    """
    import hashlib

    keytab = Path(os.environ["KUBETRAIN_KEYTAB"]).read_bytes()
    token = os.environ["HADOOP_TOKEN"].encode()
    digests = [hashlib.sha256(keytab).hexdigest(), hashlib.sha256(token).hexdigest()]
    Path(marker).write_text("\n".join(digests) + "\n")
    return _model()
