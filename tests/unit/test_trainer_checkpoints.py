"""The epoch a restarted worker group resumes from (pure rule); what an outage mid-save means."""

from __future__ import annotations

import pytest

from kubetrain_trainer.checkpoints import _outage_is_retryable, agreed_epoch, source_for
from kubetrain_trainer.data.hdfs import HdfsUnavailableError

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


def test_a_bare_oserror_while_saving_to_hdfs_is_an_outage() -> None:
    """hdfs-native raises OSError without errno when the NameNode goes away mid-write."""
    outage = pytest.raises(HdfsUnavailableError, match="cannot reach the HDFS NameNode")
    with outage, _outage_is_retryable("hdfs://nn:8020/ckpt/worker-0"):
        raise OSError("Connection refused (os error 111)")


@pytest.mark.parametrize(
    ("directory", "error"),
    [
        ("hdfs://nn:8020/ckpt/worker-0", OSError(28, "No space left on device")),
        ("/ckpt/worker-0", OSError("Connection refused (os error 111)")),
    ],
)
def test_local_errors_stay_what_they_are(directory: str, error: OSError) -> None:
    with pytest.raises(OSError) as caught, _outage_is_retryable(directory):
        raise error
    assert caught.value is error
