"""A user model entry point that crashes on purpose, to test restarts for real.

Pods import it through PYTHONPATH, exactly as a user's own package would be.
"""

from __future__ import annotations

import os
from typing import Any


def build(marker: str, exit_code: int = 138, always: bool = False, **_: Any) -> Any:
    """Worker 1 dies with `exit_code` the first time (or every time with always=True)."""
    import keras

    if os.environ.get("KUBETRAIN_REPLICA_INDEX") == "1" and (always or not os.path.exists(marker)):
        with open(marker, "a") as f:
            f.write("crashed\n")
        os._exit(exit_code)
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
