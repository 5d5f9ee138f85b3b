"""Operator settings from the environment: a bad value names its variable."""

from __future__ import annotations

import pytest

from kubetrain_operator import plan
from kubetrain_operator.settings import OperatorSettings


def test_defaults_create_job_network_policies_for_the_default_install() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.network_policy
    assert settings.plan.operator_namespace == plan.Settings().operator_namespace
    assert settings.plan.operator_labels == plan.Settings().operator_labels


def test_operator_identity_and_the_switch_are_read() -> None:
    settings = OperatorSettings.from_env(
        {
            "KUBETRAIN_NETWORK_POLICY": "false",
            "KUBETRAIN_OPERATOR_NAMESPACE": "ops",
            "KUBETRAIN_OPERATOR_LABELS": "app=kt, tier=control",
        }
    )
    assert not settings.network_policy
    assert settings.plan.operator_namespace == "ops"
    assert settings.plan.operator_labels == (("app", "kt"), ("tier", "control"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("KUBETRAIN_NETWORK_POLICY", "maybe"),
        ("KUBETRAIN_OPERATOR_LABELS", "app"),
        ("KUBETRAIN_OPERATOR_LABELS", "=kt"),
        ("KUBETRAIN_RESYNC_SECONDS", "0"),
    ],
)
def test_a_bad_value_names_its_variable(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        OperatorSettings.from_env({key: value})
