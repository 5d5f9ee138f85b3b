"""A network error while writing to HDFS is an outage; other errors stay what they are."""

from __future__ import annotations

import pytest

from kubetrain_trainer import outages
from kubetrain_trainer.data.hdfs import HdfsUnavailableError


def test_a_bare_oserror_while_writing_to_hdfs_is_an_outage() -> None:
    """hdfs-native raises OSError without errno when the NameNode goes away mid-write."""
    outage = pytest.raises(HdfsUnavailableError, match="cannot reach the HDFS NameNode")
    with outage, outages.retryable("hdfs://nn:8020/ckpt/worker-0", "checkpoint write"):
        raise OSError("Connection refused (os error 111)")


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("hdfs://nn:8020/models/m", OSError(28, "No space left on device")),
        ("hdfs://nn:8020/models/m", OSError("disk full")),
        ("/models/m", OSError("Connection refused (os error 111)")),
    ],
)
def test_other_errors_stay_what_they_are(uri: str, error: OSError) -> None:
    with pytest.raises(OSError) as caught, outages.retryable(uri, "model upload"):
        raise error
    assert caught.value is error


def test_a_typed_connection_error_is_an_outage_too() -> None:
    outage = pytest.raises(HdfsUnavailableError)
    with outage, outages.retryable("hdfs://nn:8020/m", "model upload"):
        raise ConnectionResetError(104, "Connection reset by peer")
