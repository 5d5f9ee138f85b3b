"""The apiserver (CRD schema + CEL) and `kubetrain validate` agree, field by field.

Hundreds of generated specs go to the real apiserver: every valid one is
accepted, every broken one is rejected with a message that names the broken
field, and pydantic rejects exactly the same ones. Nothing reaches the
operator that the models would not accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from kubetrain_operator.api import GROUP, PLURAL, VERSION, TrainingJob
from tests.harness.cluster import Cluster
from tests.unit.specs import jobs, with_value

pytestmark = pytest.mark.e2e
NAMESPACE = "e2e-validation"

_VOLUME = {"mountPath": "/data", "source": {"emptyDir": {}}}
_VOLUMES = "spec.data.volumes"

# (path to break, bad value, the field path the apiserver's message must name)
BREAKAGES = [
    ("spec.replicas.worker.replicas", -1, "spec.replicas.worker.replicas"),
    ("spec.replicas.worker.replicas", 5000, "spec.replicas.worker.replicas"),
    ("spec.replicas.worker.gpus", "two", "spec.replicas.worker.gpus"),
    ("spec.training.epochs", 0, "spec.training.epochs"),
    ("spec.training.learningRate", 0, "spec.training.learningRate"),
    ("spec.training.batchSizePerReplica", -3, "spec.training.batchSizePerReplica"),
    ("spec.runPolicy.restartPolicy", "Always", "spec.runPolicy.restartPolicy"),
    ("spec.runPolicy.cleanPodPolicy", "Some", "spec.runPolicy.cleanPodPolicy"),
    ("spec.runPolicy.backoffLimit", -1, "spec.runPolicy.backoffLimit"),
    ("spec.runPolicy.restartBackoffSeconds", 301, "spec.runPolicy.restartBackoffSeconds"),
    ("spec.runPolicy.restartBackoffSeconds", -1, "spec.runPolicy.restartBackoffSeconds"),
    ("spec.runPolicy.maxRestartBackoffSeconds", 86401, "spec.runPolicy.maxRestartBackoffSeconds"),
    ("spec.strategy", "horovod", "spec.strategy"),
    ("spec.data.format", "xml", "spec.data.format"),
    ("spec.data.features", [], "spec.data.features"),
    ("spec.model.entrypoint", "not a path", "spec.model.entrypoint"),
    ("spec.tpu", {"accelerator": "v5e", "topology": "2by4"}, "spec.tpu.topology"),
    ("spec.data.volumes", [{"name": "scratch", **_VOLUME}], "spec.data.volumes"),
    ("spec.data.volumes", [{"name": "data", **_VOLUME, "mountPath": "/tmp"}], "spec.data.volumes"),
    ("spec.data.volumes", [{"name": "a", **_VOLUME}, {"name": "a", **_VOLUME}], _VOLUMES),
    ("spec.data.volumes", [{"name": "a", **_VOLUME}, {"name": "b", **_VOLUME}], _VOLUMES),
    ("spec.unknownField", 1, "unknownField"),
    ("spec.replicas.launcher", {"replicas": 1}, "launcher"),
    ("metadata.name", "a" * 52, "metadata.name"),
    ("spec.replicas.chief", {"replicas": 2}, "spec.replicas.chief.replicas"),
    ("spec.strategy", "parameter_server", "spec.strategy"),
    ("spec.model", {"builtin": "mlp", "entrypoint": "a:b"}, "spec.model.builtin"),
    ("spec.model", {"kwargs": {}}, "spec.model.builtin"),
    ("spec.replicas", {"ps": {"replicas": 1}}, "spec.replicas"),
    (
        "spec.replicas",
        {"worker": {"replicas": 1, "gpus": 1}, "evaluator": {"replicas": 3}},
        "spec.replicas.evaluator.replicas",
    ),
]


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = with_value(doc, path, value)
    if value == "parameter_server":
        out["spec"]["replicas"].pop("ps", None)
    return out


@pytest.fixture(scope="module")
def custom(cluster: Cluster) -> Iterator[client.CustomObjectsApi]:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    api_client = cluster.api_client()
    yield client.CustomObjectsApi(api_client)
    api_client.close()


def _create(custom: client.CustomObjectsApi, doc: dict[str, Any]) -> ApiException | None:
    """Create then delete the job; return the apiserver's rejection, if any."""
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, doc, field_validation="Strict"
        )
    except ApiException as err:
        return err
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, doc["metadata"]["name"]
    )
    return None


def _pydantic_rejects(doc: dict[str, Any]) -> bool:
    try:
        TrainingJob.model_validate(doc)
    except ValidationError:
        return True
    return False


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.mark.timeout(600)
@_settings(150)
@given(doc=jobs())
def test_valid_specs_are_accepted_and_defaulted_like_pydantic(
    custom: client.CustomObjectsApi, doc: dict[str, Any]
) -> None:
    assert not _pydantic_rejects(doc)
    try:
        stored = custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, doc)
    except ApiException as err:
        pytest.fail(f"valid spec rejected: {json.loads(err.body)['message']}\n{doc}")
    try:
        # The apiserver's defaults are the models' defaults.
        assert stored["spec"] == TrainingJob.model_validate(doc).spec.wire()
    finally:
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, doc["metadata"]["name"]
        )


@pytest.mark.timeout(900)
@_settings(520)
@given(doc=jobs(), breakage=st.sampled_from(BREAKAGES))
def test_invalid_specs_are_rejected_naming_the_field(
    custom: client.CustomObjectsApi, doc: dict[str, Any], breakage: tuple[str, Any, str]
) -> None:
    path, value, field = breakage
    broken = _set(doc, path, value)
    if path == "spec.strategy" and value == "tpu":
        broken["spec"].pop("tpu", None)
    assert _pydantic_rejects(broken), f"models accept {path}={value!r}"
    err = _create(custom, broken)
    assert err is not None, f"apiserver accepted {path}={value!r}"
    # 422: schema or CEL; 400: strict decoding of an unknown field.
    assert err.status in (400, 422), err.body
    message = json.loads(err.body)["message"]
    assert field in message, message
