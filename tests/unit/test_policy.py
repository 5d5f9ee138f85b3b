"""Restart rules: TFJob's ExitCode semantics, backoffLimit and the restart back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubetrain_operator.api import MAX_RESTART_BACKOFF_SECONDS, RunPolicy
from kubetrain_operator.policy import is_retryable, restart_delay, restart_wait, should_restart


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


def test_restart_delay_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [restart_delay(RunPolicy(), k).total_seconds() for k in range(8)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]
    small = RunPolicy(restart_backoff_seconds=2, max_restart_backoff_seconds=5)
    assert [restart_delay(small, k).total_seconds() for k in (1, 2, 3, 50)] == [2, 4, 5, 5]
    assert restart_delay(RunPolicy(restart_backoff_seconds=0), 7) == timedelta(0)


@given(
    base=st.integers(0, MAX_RESTART_BACKOFF_SECONDS),
    cap=st.integers(0, MAX_RESTART_BACKOFF_SECONDS),
    restart=st.integers(1, 10**6),
)
def test_restart_delay_is_bounded_and_never_shrinks(base: int, cap: int, restart: int) -> None:
    policy = RunPolicy(restart_backoff_seconds=min(base, cap), max_restart_backoff_seconds=cap)
    delay = restart_delay(policy, restart)
    assert timedelta(0) <= delay <= timedelta(seconds=cap)
    assert restart_delay(policy, restart + 1) >= delay


def test_restart_wait_counts_down_from_the_last_restart() -> None:
    policy = RunPolicy()
    last = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert restart_wait(policy, 2, last, last) == timedelta(seconds=20)
    assert restart_wait(policy, 2, last, last + timedelta(seconds=15)) == timedelta(seconds=5)
    assert restart_wait(policy, 2, last, last + timedelta(seconds=20)) == timedelta(0)
    assert restart_wait(policy, 2, last, last + timedelta(hours=1)) == timedelta(0)
    assert restart_wait(policy, 0, None, last) == timedelta(0)
