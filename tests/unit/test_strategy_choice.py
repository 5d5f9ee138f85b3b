"""Strategy selection is pure: spec + TF_CONFIG + GPU count -> strategy and reason."""

from __future__ import annotations

import pytest

from kubetrain_operator.api import Strategy
from kubetrain_trainer.strategy import choose

from .conftest import make_job

TWO = {"worker": ["a:1", "b:1"]}


@pytest.mark.parametrize(
    ("spec", "cluster", "gpus", "expected"),
    [
        ({}, {"worker": ["a:1"]}, 0, Strategy.ONE_DEVICE),
        ({}, {"worker": ["a:1"]}, 1, Strategy.ONE_DEVICE),
        ({}, {"worker": ["a:1"]}, 4, Strategy.MIRRORED),
        ({}, TWO, 0, Strategy.MULTI_WORKER_MIRRORED),
        ({}, {"chief": ["c:1"], "worker": ["a:1"]}, 8, Strategy.MULTI_WORKER_MIRRORED),
        ({}, {"chief": ["c:1"], "worker": ["a:1"], "ps": ["p:1"]}, 0, Strategy.PARAMETER_SERVER),
        ({"tpu": {"accelerator": "v5litepod-8", "topology": "2x4"}}, TWO, 0, Strategy.TPU),
        ({"strategy": "mirrored"}, TWO, 0, Strategy.MIRRORED),
    ],
)
def test_choose(spec: dict, cluster: dict, gpus: int, expected: Strategy) -> None:
    choice = choose(make_job(**spec).spec, cluster, gpus)
    assert choice.strategy == expected
    assert choice.reason
