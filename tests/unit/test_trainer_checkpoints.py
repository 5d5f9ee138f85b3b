"""The epoch a restarted worker group resumes from (pure rule)."""

from __future__ import annotations

import pytest

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
