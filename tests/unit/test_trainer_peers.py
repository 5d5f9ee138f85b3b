"""When do ps, parameter_server workers and the evaluator stop? (real HTTP, no TensorFlow)."""

from __future__ import annotations

import socket

from kubetrain_trainer import progress
from kubetrain_trainer.peers import ReporterWatch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _watch(state: str, then_stop: bool) -> tuple[bool, bool]:
    port = _free_port()
    snap = progress.ProgressState(epochs=2, steps_per_epoch=5, global_batch_size=8)
    snap.update(state=state)
    server = progress.serve(snap, port)
    watch = ReporterWatch(f"http://127.0.0.1:{port}/progress")
    while_up = watch.done()
    if then_stop:
        server.shutdown()
        server.server_close()
    after = watch.done()
    if not then_stop:
        server.shutdown()
        server.server_close()
    return while_up, after


def test_succeeded_reporter_ends_the_wait() -> None:
    assert _watch("succeeded", then_stop=False) == (True, True)


def test_reporter_gone_after_training_finished_ends_the_wait() -> None:
    assert _watch("finished", then_stop=True) == (False, True)


def test_reporter_gone_mid_training_keeps_waiting_for_the_restart() -> None:
    assert _watch("running", then_stop=True) == (False, False)


def test_unreachable_reporter_never_seen_keeps_waiting() -> None:
    assert not ReporterWatch(f"http://127.0.0.1:{_free_port()}/progress").done()
