"""Training progress: a Keras callback fills it, a small HTTP server shows it.

The operator polls `/progress` on the chief and copies it into the job's
status; the trainer needs no Kubernetes credentials. `/metrics` gives the same
numbers in Prometheus text format. Pure parts (snapshot, ETA, text format) are
separate from the I/O.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any


class ProgressState:
    """Thread-safe latest progress, as the TrainingJob status' `progress` field."""

    def __init__(self, epochs: int, steps_per_epoch: int, global_batch_size: int) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {
            "state": "starting",
            "epoch": 0,
            "epochs": epochs,
            "step": 0,
            "stepsPerEpoch": steps_per_epoch,
            "metrics": {},
        }
        self.global_batch_size = global_batch_size

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._data.update(fields)
            self._data["updatedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._data))


def eta_seconds(seconds_per_step: float, remaining_steps: int) -> float:
    """Seconds left, never negative or NaN."""
    if not math.isfinite(seconds_per_step) or remaining_steps <= 0:
        return 0.0
    return round(seconds_per_step * remaining_steps, 1)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    """The snapshot in Prometheus exposition format."""
    lines = []
    for key in ("epoch", "step", "loss", "examplesPerSecond", "etaSeconds"):
        value = snapshot.get(key)
        if isinstance(value, int | float):
            lines.append(f"kubetrain_trainer_{_snake(key)} {value}")
    for name, value in sorted(snapshot.get("metrics", {}).items()):
        lines.append(f'kubetrain_trainer_metric{{name="{name}"}} {value}')
    return "\n".join(lines) + "\n"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class EpochProgressHooks:
    """Records epoch, step, loss, metrics, examples/s and ETA after each epoch.

    Plain hooks; `callback` combines them with Keras 3's or tf_keras' base class.
    """

    def __init__(self, state: ProgressState) -> None:
        super().__init__()
        self.state = state
        self._epoch = 0
        self._epoch_start = time.monotonic()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.state.update(state="running")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self.state.snapshot()["stepsPerEpoch"]
        self._record(steps, logs or {}, epoch_done=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.state.update(state="finished")

    def _record(self, step: int, logs: dict[str, Any], epoch_done: bool = False) -> None:
        snap = self.state.snapshot()
        elapsed = max(time.monotonic() - self._epoch_start, 1e-9)
        per_step = elapsed / max(step, 1)
        remaining = (snap["epochs"] - self._epoch - 1) * snap["stepsPerEpoch"] + (
            snap["stepsPerEpoch"] - step
        )
        metrics = {k: round(float(v), 6) for k, v in logs.items() if k != "loss"}
        fields: dict[str, Any] = {
            "epoch": self._epoch + 1 if epoch_done else self._epoch,
            "step": self._epoch * snap["stepsPerEpoch"] + step,
            "examplesPerSecond": round(step * self.state.global_batch_size / elapsed, 1),
            "etaSeconds": eta_seconds(per_step, remaining),
        }
        if "loss" in logs:
            fields["loss"] = round(float(logs["loss"]), 6)
        if metrics:
            fields["metrics"] = {**snap["metrics"], **metrics}
        self.state.update(**fields)


class ProgressHooks(EpochProgressHooks):
    """Also records every `every_n_batches` batches (not under parameter_server,
    whose tf_keras `fit` refuses batch-level callbacks)."""

    def __init__(self, state: ProgressState, every_n_batches: int = 10) -> None:
        super().__init__(state)
        self.every = max(1, every_n_batches)
        # ProgressState is lock-protected, so Keras 3 may call the batch hook from
        # its dispatch thread; otherwise it syncs every step (measured 1.6x slower).
        self.async_safe = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % self.every:
            return
        self._record(batch + 1, logs or {})


def callback(
    state: ProgressState, keras_module: ModuleType | None = None, batches: bool = True
) -> Any:
    """The progress callback for `keras_module` (default: Keras 3).

    Args:
        state: what the callback fills.
        keras_module: keras or tf_keras.
        batches: also record within epochs.
    """
    from kubetrain_trainer.callbacks import with_base

    if keras_module is None:
        import keras as keras_module
    return with_base(ProgressHooks if batches else EpochProgressHooks, keras_module)(state)


def serve(state: ProgressState, port: int) -> ThreadingHTTPServer:
    """Serve /progress (JSON), /metrics (Prometheus) and /healthz on `port`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            snap = state.snapshot()
            if self.path == "/progress":
                body, ctype = json.dumps(snap).encode(), "application/json"
            elif self.path == "/metrics":
                body, ctype = prometheus_text(snap).encode(), "text/plain; version=0.0.4"
            elif self.path == "/healthz":
                body, ctype = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Polling every few seconds would flood the training log."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="progress-http", daemon=True).start()
    return server
