"""Resolving the TPU address (pure: no TensorFlow)."""

from __future__ import annotations

from kubetrain_operator.api import TPUSpec
from kubetrain_trainer.devices import mixed_precision_policy
from kubetrain_trainer.tpu import address

SLICE = {"accelerator": "v5litepod-8", "topology": "2x4"}


def test_spec_address_wins_and_gets_a_scheme() -> None:
    spec = TPUSpec.model_validate({**SLICE, "address": "10.0.0.2:8470"})
    assert address(spec, {"KUBETRAIN_TPU_ADDRESS": "other:1"}) == "grpc://10.0.0.2:8470"


def test_operator_env_then_resolver_discovery() -> None:
    spec = TPUSpec.model_validate(SLICE)
    assert address(spec, {"KUBETRAIN_TPU_ADDRESS": "grpc://t:8470"}) == "grpc://t:8470"
    assert address(spec, {}) is None


def test_mixed_precision_is_bfloat16_on_tpu() -> None:
    assert mixed_precision_policy(gpus=0, tpu=True) == "mixed_bfloat16"
    assert mixed_precision_policy(gpus=2, tpu=False) == "mixed_float16"
    assert mixed_precision_policy(gpus=0, tpu=False) == "mixed_bfloat16"
