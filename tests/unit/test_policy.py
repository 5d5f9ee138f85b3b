"""Restart rules: TFJob's ExitCode semantics and backoffLimit."""

from __future__ import annotations

import pytest

from kubetrain_operator.api import RunPolicy
from kubetrain_operator.policy import is_retryable, should_restart


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [
        ("OnFailure", 1, True),
        ("OnFailure", 0, False),
        ("Never", 137, False),
        ("ExitCode", 2, False),
        ("ExitCode", 127, False),
        ("ExitCode", 128, True),
        ("ExitCode", 138, True),
        ("ExitCode", -9, True),
    ],
)
def test_is_retryable(policy: str, code: int, expected: bool) -> None:
    assert is_retryable(policy, code) is expected


def test_backoff_limit_counts_every_restart() -> None:
    policy = RunPolicy(backoff_limit=2)
    assert [should_restart(policy, 1, n) for n in range(4)] == [True, True, False, False]
    assert not should_restart(RunPolicy(backoff_limit=0), 1, 0)
