"""Operator settings, from the environment (the Deployment sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kubetrain_operator import plan


def _flag(env: dict[str, str], key: str, default: bool) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ValueError(f"{key}: expected true or false, got {env[key]!r}")


def _labels(env: dict[str, str], key: str) -> tuple[tuple[str, str], ...] | None:
    """`k=v,k=v` into label pairs; None when unset."""
    raw = env.get(key)
    if not raw:
        return None
    pairs = []
    for item in raw.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name:
            raise ValueError(f"{key}: expected key=value pairs separated by commas, got {raw!r}")
        pairs.append((name, value))
    return tuple(pairs)


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{key}: must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator watches and how hard it works."""

    namespaces: tuple[str, ...] = ()
    plan: plan.Settings = field(default_factory=plan.Settings)
    max_concurrent_creates: int = 16
    resync_seconds: int = 5
    progress_timeout_seconds: int = 2
    metrics_port: int = 8082
    leader_election_namespace: str | None = None
    leader_election_lease: str = "kubetrain-operator"
    # Create a NetworkPolicy per job (plan.network_policy) that keeps other
    # pods off its TF port; off where the cluster has no NetworkPolicy support.
    network_policy: bool = True

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorSettings:
        """Read KUBETRAIN_* variables; raise ValueError naming a bad one."""
        env = dict(os.environ if env is None else env)
        namespaces = tuple(n for n in env.get("KUBETRAIN_NAMESPACES", "").split(",") if n)
        defaults = plan.Settings()
        return cls(
            namespaces=namespaces,
            plan=plan.Settings(
                default_image=env.get("KUBETRAIN_TRAINER_IMAGE") or defaults.default_image,
                port=_int(env, "KUBETRAIN_TF_PORT", defaults.port),
                progress_port=_int(env, "KUBETRAIN_PROGRESS_PORT", defaults.progress_port),
                operator_namespace=env.get("KUBETRAIN_OPERATOR_NAMESPACE")
                or defaults.operator_namespace,
                operator_labels=_labels(env, "KUBETRAIN_OPERATOR_LABELS")
                or defaults.operator_labels,
            ),
            network_policy=_flag(env, "KUBETRAIN_NETWORK_POLICY", True),
            max_concurrent_creates=_int(env, "KUBETRAIN_MAX_CONCURRENT_CREATES", 16),
            resync_seconds=_int(env, "KUBETRAIN_RESYNC_SECONDS", 5),
            metrics_port=_int(env, "KUBETRAIN_METRICS_PORT", 8082),
            leader_election_namespace=env.get("KUBETRAIN_LEADER_ELECTION_NAMESPACE") or None,
            leader_election_lease=env.get("KUBETRAIN_LEADER_ELECTION_LEASE")
            or "kubetrain-operator",
        )
