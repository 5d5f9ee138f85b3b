"""plan.py: names, TF_CONFIG, accelerators, mounts and hardening of planned objects."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings

from kubetrain_operator import plan
from kubetrain_operator.api import MAX_JOB_NAME_LENGTH, ReplicaType, TrainingJob

from .conftest import make_job
from .specs import jobs

SETTINGS = plan.Settings(default_image="trainer:test")


def _pods(job: TrainingJob) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in plan.plan(job, SETTINGS) if o["kind"] == "Pod"}


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


def test_names_are_deterministic_and_dns_safe() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 3}, "evaluator": {}})
    names = [r.name for r in plan.replicas(job)]
    assert names == [
        "mnist-chief-0",
        "mnist-worker-0",
        "mnist-worker-1",
        "mnist-worker-2",
        "mnist-evaluator-0",
    ]
    assert plan.plan(job, SETTINGS) == plan.plan(job, SETTINGS)
    longest = plan.replica_name("a" * MAX_JOB_NAME_LENGTH, ReplicaType.WORKER, 4095)
    assert len(longest) == 63


def test_tf_config_uses_headless_service_dns() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 2}, "evaluator": {}})
    pods = _pods(job)
    config = json.loads(_env(pods["mnist-worker-1"])["TF_CONFIG"])
    assert config == {
        "cluster": {
            "chief": ["mnist-chief-0.team-a.svc:2222"],
            "worker": ["mnist-worker-0.team-a.svc:2222", "mnist-worker-1.team-a.svc:2222"],
        },
        "task": {"type": "worker", "index": 1},
        "environment": "cloud",
    }
    evaluator = json.loads(_env(pods["mnist-evaluator-0"])["TF_CONFIG"])
    assert evaluator["task"] == {"type": "evaluator", "index": 0}
    assert "evaluator" not in evaluator["cluster"]


def test_one_headless_service_per_pod_with_tfjob_port() -> None:
    services = [o for o in plan.plan(make_job(), SETTINGS) if o["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["mnist-worker-0", "mnist-worker-1"]
    spec = services[0]["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["ports"] == [{"name": "tfjob-port", "port": 2222, "targetPort": 2222}]
    assert spec["selector"][plan.LABEL_INDEX] == "0"


def test_labels_owner_and_hardening() -> None:
    pod = _pods(make_job())["mnist-worker-0"]
    meta = pod["metadata"]
    assert meta["labels"][plan.LABEL_JOB] == "mnist"
    assert meta["labels"][plan.LABEL_TYPE] == "worker"
    assert meta["ownerReferences"][0] | {"uid": "u-1"} == meta["ownerReferences"][0]
    assert meta["ownerReferences"][0]["controller"] is True
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["image"] == "trainer:test"
    assert container["command"] == ["python", "-m", "kubetrain_trainer"]


def test_gpus_become_limits_and_toleration() -> None:
    job = make_job(
        replicas={"worker": {"replicas": 2, "gpus": 4, "resources": {"limits": {"cpu": 8}}}}
    )
    pod = _pods(job)["mnist-worker-0"]
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "8", "nvidia.com/gpu": "4"}
    assert plan.GPU_TOLERATION in pod["spec"]["tolerations"]


def test_tpu_requests_selectors_and_worker_env() -> None:
    job = make_job(tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "4x4"})
    pods = _pods(job)
    pod = pods["mnist-worker-1"]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"]["google.com/tpu"] == "4"
    assert pod["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
    }
    env = _env(pod)
    assert env["TPU_WORKER_ID"] == "1"
    assert env["TPU_WORKER_HOSTNAMES"].split(",") == [
        "mnist-worker-0.team-a.svc",
        "mnist-worker-1.team-a.svc",
    ]


def test_hdfs_config_and_keytab_mounts() -> None:
    job = make_job(
        data={
            "train": "hdfs://nn/x",
            "features": [{"name": "x"}],
            "label": {"name": "y"},
            "hdfs": {"configMap": "hadoop-conf", "kerberosSecret": "keytab", "principal": "a@B"},
            "volumes": [{"name": "extra", "mountPath": "/data", "source": {"emptyDir": {}}}],
        }
    )
    pod = _pods(job)["mnist-worker-0"]
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["hadoop-conf"]["readOnly"] and mounts["keytab"]["readOnly"]
    assert mounts["extra"]["mountPath"] == "/data"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["keytab"]["secret"]["secretName"] == "keytab"
    env = _env(pod)
    assert env["HADOOP_CONF_DIR"] == plan.HADOOP_CONF_DIR
    assert env["KUBETRAIN_PRINCIPAL"] == "a@B"
    assert "KRB5_CONFIG" not in env and "krb5-conf" not in volumes


def test_krb5_config_map_is_mounted_read_only_as_krb5_config() -> None:
    """Pods get the realm's KDCs from the ConfigMap, not the image's /etc/krb5.conf or DNS."""
    hdfs = {"kerberosSecret": "keytab", "principal": "a@B", "krb5ConfigMap": "realm"}
    job = make_job(
        data={
            "train": "hdfs://nn/x",
            "features": [{"name": "x"}],
            "label": {"name": "y"},
            "hdfs": hdfs,
        }
    )
    pod = _pods(job)["mnist-worker-0"]
    mount = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}["krb5-conf"]
    volume = {v["name"]: v for v in pod["spec"]["volumes"]}["krb5-conf"]
    assert volume["configMap"] == {
        "name": "realm",
        "items": [{"key": "krb5.conf", "path": "krb5.conf"}],
    }
    assert mount == {"name": "krb5-conf", "mountPath": plan.KRB5_DIR, "readOnly": True}
    assert _env(pod)["KRB5_CONFIG"] == f"{plan.KRB5_DIR}/krb5.conf"


def test_reporter_is_chief_else_worker_zero() -> None:
    assert plan.reporter(make_job()).name == "mnist-worker-0"
    with_chief = make_job(replicas={"chief": {}, "worker": {"replicas": 1}})
    assert plan.reporter(with_chief).name == "mnist-chief-0"
    ports = _pods(with_chief)["mnist-chief-0"]["spec"]["containers"][0]["ports"]
    assert {"name": "progress", "containerPort": 8080} in ports


def test_job_env_carries_the_validated_spec() -> None:
    job = make_job()
    env = _env(_pods(job)["mnist-worker-0"])
    payload = json.loads(env["KUBETRAIN_JOB"])
    assert TrainingJob.model_validate(payload).spec == job.spec


def _allowed(policy: dict[str, Any], peer_ns: str, peer: dict[str, str], port: int) -> bool:
    """NetworkPolicy ingress semantics for matchLabels selectors (all this policy uses)."""

    def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    own_ns = policy["metadata"]["namespace"]
    for rule in policy["spec"]["ingress"]:
        if port not in [p["port"] for p in rule["ports"]]:
            continue
        for source in rule["from"]:
            ns_sel = source.get("namespaceSelector")
            in_ns = (
                matches(ns_sel, {"kubernetes.io/metadata.name": peer_ns})
                if ns_sel is not None
                else peer_ns == own_ns
            )
            if in_ns and matches(source.get("podSelector", {}), peer):
                return True
    return False


def test_network_policy_admits_only_the_job_and_the_operator() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 2}})
    policy = plan.network_policy(job, SETTINGS)
    ns = job.metadata.namespace or "default"
    assert policy["metadata"]["ownerReferences"] == [plan.owner_reference(job)]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for pod in _pods(job).values():
        assert all(
            pod["metadata"]["labels"].get(k) == v
            for k, v in policy["spec"]["podSelector"]["matchLabels"].items()
        )
    same_job = _pods(job)["mnist-worker-1"]["metadata"]["labels"]
    other_job = {plan.LABEL_JOB: "other", "app.kubernetes.io/managed-by": "kubetrain"}
    operator = dict(SETTINGS.operator_labels)
    tf_port, progress = SETTINGS.port, SETTINGS.progress_port

    assert _allowed(policy, ns, same_job, tf_port)
    assert not _allowed(policy, ns, same_job, progress)
    assert not _allowed(policy, ns, other_job, tf_port)
    assert not _allowed(policy, "elsewhere", same_job, tf_port)
    assert _allowed(policy, SETTINGS.operator_namespace, operator, progress)
    assert not _allowed(policy, SETTINGS.operator_namespace, operator, tf_port)
    assert not _allowed(policy, ns, operator, progress)
    assert not _allowed(policy, SETTINGS.operator_namespace, {"app": "other"}, progress)


@given(jobs())
@settings(max_examples=40, deadline=None)
def test_planning_many_pods_at_once_equals_one_by_one(doc: dict[str, Any]) -> None:
    """The operator plans a job's missing pods together (`plan.pods`); every
    pod must be exactly what planning it alone gives, for any subset."""
    job = TrainingJob.model_validate(doc)
    planned = plan.replicas(job)
    address_of = plan.service_address(job, SETTINGS)
    for wanted in (planned, planned[1::2]):
        pods = plan.pods(job, wanted, SETTINGS)
        assert pods == [plan.pod(job, r, SETTINGS) for r in wanted]
        for replica, pod in zip(wanted, pods, strict=True):
            alone = plan.trainer_env(job, replica, address_of, SETTINGS.progress_port)
            assert alone.items() <= _env(pod).items()
