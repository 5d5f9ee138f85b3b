"""Restart rules shared by the operator and the local runner (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubetrain_operator.api import RunPolicy

# TFJob's ExitCode rule: 1-127 are the program's own (permanent) errors,
# >= 128 are signals and retryable failures.
RETRYABLE_EXIT_CODE_MIN = 128


def is_retryable(restart_policy: str, exit_code: int) -> bool:
    """Whether a replica that exited with `exit_code` may be restarted at all."""
    if exit_code == 0 or restart_policy == "Never":
        return False
    if restart_policy == "ExitCode":
        return exit_code >= RETRYABLE_EXIT_CODE_MIN or exit_code < 0
    return True


def should_restart(policy: RunPolicy, exit_code: int, restarts_so_far: int) -> bool:
    """Restart the worker group, or fail the job?

    Every restart (of one pod or of the whole group) counts against
    backoffLimit, so a crash loop always ends.
    """
    return is_retryable(policy.restart_policy, exit_code) and restarts_so_far < policy.backoff_limit


def restart_delay(policy: RunPolicy, restart: int) -> timedelta:
    """How long the `restart`-th restart (1-based) waits before its pods are created.

    kubelet's CrashLoopBackOff, which TFJob's OnFailure pods get for free:
    restartBackoffSeconds, doubled with each further restart, capped at
    maxRestartBackoffSeconds. Without it an outage burns one restart of
    backoffLimit every few seconds.
    """
    if restart < 1:
        return timedelta(0)
    # 2**20 already exceeds any cap (at most a day) for a base of 1 s.
    seconds = policy.restart_backoff_seconds * 2 ** min(restart - 1, 20)
    return timedelta(seconds=min(seconds, policy.max_restart_backoff_seconds))


def restart_wait(
    policy: RunPolicy, restarts: int, last_restart: datetime | None, now: datetime
) -> timedelta:
    """Time left in the back-off of the latest restart; zero once pods may be created.

    Args:
        policy: the job's runPolicy.
        restarts: restarts so far (status.restartCount), the latest included.
        last_restart: when the latest restart began (status.lastRestartTime).
        now: the current time.
    """
    if last_restart is None:
        return timedelta(0)
    return max(timedelta(0), last_restart + restart_delay(policy, restarts) - now)
