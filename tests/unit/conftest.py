"""Shared builders for unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain_operator.api import TrainingJob


def make_job(name: str = "mnist", namespace: str = "team-a", **spec: Any) -> TrainingJob:
    """A valid job; keyword arguments replace top-level spec fields (wire names)."""
    base: dict[str, Any] = {
        "replicas": {"worker": {"replicas": 2}},
        "data": {
            "train": "hdfs://nn:8020/mnist/train",
            "features": [{"name": "image", "shape": [28, 28, 1]}],
            "label": {"name": "label", "dtype": "int64"},
        },
    }
    base.update(spec)
    return TrainingJob.model_validate(
        {"metadata": {"name": name, "namespace": namespace, "uid": "u-1"}, "spec": base}
    )


@pytest.fixture
def job() -> TrainingJob:
    return make_job()
