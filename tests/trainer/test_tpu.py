"""A TPU address where nothing answers fails fast with a clear error (no TPU needed)."""

from __future__ import annotations

import re
import socket
from datetime import datetime
from pathlib import Path

import pytest

from tests.trainer.replica import run_trainer

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _at(line: str) -> datetime:
    match = STAMP.match(line)
    assert match, line
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")


@pytest.mark.trainer
@pytest.mark.timeout(180)
def test_unreachable_tpu_fails_within_the_timeout(tmp_path: Path) -> None:
    tpu_address = f"127.0.0.1:{_free_port()}"
    # Inputs are checked before anything else: they must exist to reach the TPU step.
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-0.tfrecord").write_bytes(b"")
    spec = {
        "tpu": {
            "accelerator": "v5litepod-8",
            "topology": "2x4",
            "address": tpu_address,
            "connectTimeoutSeconds": 3,
        },
        "data": {
            "train": str(tmp_path / "train"),
            "features": [{"name": "x", "shape": [4]}],
            "label": {"name": "y", "dtype": "int64"},
        },
    }
    result = run_trainer(spec, {}, tmp_path, timeout=170)
    elapsed = result.seconds
    lines = result.stderr.splitlines()
    connecting = next(line for line in lines if "connecting to the TPU at" in line)
    error = next(line for line in lines if " ERROR kubetrain_trainer" in line)
    assert result.code == 2, result.stderr[-3000:]  # a configuration error, not retried
    assert f"grpc://{tpu_address}" in error and "within 3 s" in error, error
    assert "spec.tpu.connectTimeoutSeconds" in error
    waited = (_at(error) - _at(connecting)).total_seconds()
    assert 2.9 <= waited <= 5, waited
    # the abandoned connection thread must not hold the process open
    assert elapsed < 90, elapsed
    print(f"error after {waited:.1f} s; process exited after {elapsed:.1f} s")
