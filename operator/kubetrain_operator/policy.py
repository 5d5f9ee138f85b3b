"""Restart rules shared by the operator and the local runner (pure)."""

from __future__ import annotations

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
