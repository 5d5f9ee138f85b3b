"""The epoch a restarted worker group resumes from (pure rule), and background writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kubetrain_trainer import checkpoints
from kubetrain_trainer.checkpoints import agreed_epoch, source_for

DIRS = {"worker-0": "/b/worker-0", "worker-1": "/b/worker-1"}


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ({"worker-0": [], "worker-1": []}, 0),
        ({"worker-0": [1, 2], "worker-1": [1, 2]}, 2),
        # killed between the two workers' saves of epoch 3
        ({"worker-0": [2, 3], "worker-1": [1, 2]}, 2),
        ({"worker-0": [1], "worker-1": []}, 0),
        ({}, 0),
    ],
)
def test_agreed_epoch_is_the_newest_every_worker_finished(
    saved: dict[str, list[int]], expected: int
) -> None:
    assert agreed_epoch(saved) == expected


def test_source_prefers_own_checkpoint_then_any_worker_with_the_epoch() -> None:
    saved = {"worker-0": [2, 3], "worker-1": [1, 2]}
    assert source_for(2, "worker-1", saved, DIRS) == "/b/worker-1"
    assert source_for(3, "worker-1", saved, DIRS) == "/b/worker-0"
    with pytest.raises(FileNotFoundError):
        source_for(4, "worker-0", saved, DIRS)


class _Bytes:
    """A snapshot that writes fixed bytes, after `gate` is set."""

    def __init__(self, data: bytes, gate: threading.Event | None = None) -> None:
        self.data = data
        self.gate = gate

    def write(self, path: str) -> None:
        if self.gate is not None:
            assert self.gate.wait(10)
        Path(path).write_bytes(self.data)


class _Broken:
    def write(self, path: str) -> None:
        raise OSError("disk full")


def test_background_writer_lands_epochs_in_order_and_prunes(tmp_path: Path) -> None:
    writer = checkpoints.BackgroundWriter(str(tmp_path), keep=2)
    for epoch in (1, 2, 3):
        writer.submit(_Bytes(b"e%d" % epoch), epoch)
    writer.wait()
    assert checkpoints.saved_epochs(str(tmp_path)) == [2, 3]
    assert (tmp_path / checkpoints.weights_name(3)).read_bytes() == b"e3"


def test_an_epoch_counts_only_once_its_background_write_is_done(tmp_path: Path) -> None:
    gate = threading.Event()
    writer = checkpoints.BackgroundWriter(str(tmp_path), keep=2)
    writer.submit(_Bytes(b"e1", gate), 1)
    assert checkpoints.saved_epochs(str(tmp_path)) == []
    gate.set()
    writer.wait()
    assert checkpoints.saved_epochs(str(tmp_path)) == [1]


def test_a_failed_background_write_is_raised_on_the_training_thread(tmp_path: Path) -> None:
    writer = checkpoints.BackgroundWriter(str(tmp_path), keep=2)
    writer.submit(_Broken(), 1)
    with pytest.raises(OSError, match="disk full"):
        writer.submit(_Bytes(b"e2"), 2)
    writer.submit(_Broken(), 3)
    with pytest.raises(OSError, match="disk full"):
        writer.wait()
    assert checkpoints.saved_epochs(str(tmp_path)) == []
