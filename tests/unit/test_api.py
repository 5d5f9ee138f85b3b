"""The API models: valid specs round-trip, invalid ones name the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubetrain_operator.api import MAX_JOB_NAME_LENGTH, TrainingJob, format_errors

from .specs import jobs, with_value


@settings(max_examples=200, deadline=None)
@given(jobs())
def test_valid_jobs_round_trip(doc: dict[str, Any]) -> None:
    job = TrainingJob.model_validate(doc)
    again = TrainingJob.model_validate(job.wire())
    assert again == job
    assert again.wire() == job.wire()


def _errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        TrainingJob.model_validate(doc)
    return format_errors(info.value)


# (path to break, bad value, text the message must contain)
BREAKAGES = [
    ("spec.replicas.worker.replicas", -1, "spec.replicas.worker.replicas: Input should be greater"),
    ("spec.replicas.worker.gpus", "two", "spec.replicas.worker.gpus: Input should be a valid int"),
    ("spec.training.epochs", 0, "spec.training.epochs: Input should be greater than or equal to 1"),
    ("spec.training.learningRate", 0, "spec.training.learningRate: Input should be greater than 0"),
    ("spec.runPolicy.restartPolicy", "Always", "spec.runPolicy.restartPolicy: Input should be"),
    ("spec.runPolicy.cleanPodPolicy", "Some", "spec.runPolicy.cleanPodPolicy"),
    (
        "spec.runPolicy.restartBackoffSeconds",
        301,
        "spec.runPolicy.restartBackoffSeconds: restartBackoffSeconds must not exceed",
    ),
    ("spec.runPolicy.maxRestartBackoffSeconds", 86401, "spec.runPolicy.maxRestartBackoffSeconds"),
    ("spec.strategy", "horovod", "spec.strategy: Input should be"),
    ("spec.data.format", "xml", "spec.data.format"),
    ("spec.model.entrypoint", "not a path", "spec.model.entrypoint: String should match pattern"),
    ("spec.tpu", {"accelerator": "v5e", "topology": "2by4"}, "spec.tpu.topology"),
    ("spec.unknownField", 1, "spec.unknownField: Extra inputs are not permitted"),
    ("spec.replicas.launcher", {"replicas": 1}, "spec.replicas.launcher: Extra inputs"),
    ("metadata.name", "Bad_Name", "metadata.name: String should match pattern"),
    ("metadata.name", "a" * (MAX_JOB_NAME_LENGTH + 1), "metadata.name: at most"),
    ("spec.replicas.chief", {"replicas": 2}, "spec.replicas.chief.replicas: chief: at most 1"),
    ("spec.strategy", "parameter_server", "spec.strategy: strategy parameter_server needs"),
    ("spec.strategy", "tpu", "spec.strategy: strategy tpu needs a tpu block"),
    ("spec.model", {"builtin": "mlp", "entrypoint": "a:b"}, "spec.model.builtin: set exactly one"),
    ("spec.model", {"kwargs": {}}, "spec.model.builtin: set exactly one"),
    ("spec.replicas", {"ps": {"replicas": 1}}, "spec.replicas: needs a chief or at least one"),
]


@settings(max_examples=60, deadline=None)
@given(doc=jobs(), breakage=st.sampled_from(BREAKAGES))
def test_invalid_jobs_name_the_field(doc: dict[str, Any], breakage: tuple[str, Any, str]) -> None:
    path, value, expected = breakage
    broken = with_value(doc, path, value)
    if value == "tpu":
        broken["spec"].pop("tpu", None)
    errors = _errors(broken)
    assert any(expected in line for line in errors), errors


def test_tpu_excludes_gpus() -> None:
    doc = {
        "metadata": {"name": "t"},
        "spec": {
            "replicas": {"worker": {"replicas": 2, "gpus": 1}},
            "tpu": {"accelerator": "v5litepod-8", "topology": "2x4"},
            "data": {"train": "x", "features": [{"name": "x"}], "label": {"name": "y"}},
        },
    }
    assert any("spec.tpu: tpu cannot be combined with gpus" in e for e in _errors(doc))


def test_defaults_follow_kubeflow() -> None:
    job = TrainingJob.model_validate(
        {
            "metadata": {"name": "d"},
            "spec": {
                "replicas": {"worker": {}},
                "data": {"train": "x", "features": [{"name": "x"}], "label": {"name": "y"}},
            },
        }
    )
    policy = job.spec.run_policy
    assert (policy.restart_policy, policy.clean_pod_policy, policy.backoff_limit) == (
        "OnFailure",
        "Running",
        3,
    )
    # kubelet's CrashLoopBackOff starts at 10 s and stops doubling at 5 min.
    assert (policy.restart_backoff_seconds, policy.max_restart_backoff_seconds) == (10, 300)
    assert job.spec.replicas.worker is not None and job.spec.replicas.worker.replicas == 1
    assert job.spec.success_policy == "chief"
