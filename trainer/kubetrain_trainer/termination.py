"""The pod's termination message: how a replica tells the operator how it ended.

Kubernetes keeps what a container writes to /dev/termination-log in the
pod's status, so the operator reads it without reaching the pod: a failure's
reason, or the reporter's final progress (the last epoch of a short job
would otherwise fall between two progress polls).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

# Kubernetes keeps 4 KiB per container; a reason longer than this is noise.
MAX_CHARS = 1024


def write(message: str) -> None:
    """Replace the termination message; best effort (a local run may have no file)."""
    path = os.environ.get("KUBETRAIN_TERMINATION_LOG", "/dev/termination-log")
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write(message.strip()[:MAX_CHARS])


def write_final_progress(snapshot: dict[str, Any]) -> None:
    """Leave the last progress snapshot as JSON, without metrics if it would not fit."""
    text = json.dumps(snapshot, separators=(",", ":"))
    if len(text) > MAX_CHARS:
        text = json.dumps({**snapshot, "metrics": {}}, separators=(",", ":"))
    if len(text) <= MAX_CHARS:
        write(text)
