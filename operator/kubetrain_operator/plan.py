"""Pure planning: a TrainingJob becomes pods, headless services and TF_CONFIG.

No I/O here. The operator and the local runner plan the same replicas, with
deterministic names, so a restarted operator re-plans the same objects and
creates only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubetrain_operator.api import (
    API_VERSION,
    KIND,
    OPERATOR_VOLUMES,
    HDFSSpec,
    ReplicaType,
    TrainingJob,
)

LABEL_JOB = "kubetrain.io/job-name"
LABEL_TYPE = "kubetrain.io/replica-type"
LABEL_INDEX = "kubetrain.io/replica-index"
CONTAINER = "tensorflow"
PORT_NAME = "tfjob-port"
PROGRESS_PORT_NAME = "progress"
SCRATCH_DIR = OPERATOR_VOLUMES["scratch"]
HADOOP_CONF_DIR = OPERATOR_VOLUMES["hadoop-conf"]
KEYTAB_DIR = OPERATOR_VOLUMES["keytab"]
KRB5_DIR = OPERATOR_VOLUMES["krb5-conf"]
KRB5_CONF = "krb5.conf"
TRAINER_COMMAND = ["python", "-m", "kubetrain_trainer"]
GPU_RESOURCE = "nvidia.com/gpu"
TPU_RESOURCE = "google.com/tpu"
# The cluster roles TF_CONFIG lists; the evaluator only reads checkpoints, so
# it gets its own task but is never a member of the training cluster.
CLUSTER_TYPES = (ReplicaType.CHIEF, ReplicaType.WORKER, ReplicaType.PS)


@dataclass(frozen=True)
class Settings:
    """Operator settings that shape every plan."""

    default_image: str = "kubetrain/trainer:0.1.0"
    port: int = 2222
    progress_port: int = 8080
    cluster_domain: str = "svc"
    # Where the operator runs and how its pods are labelled (manifests/deployment.yaml):
    # the only peer allowed to read a job's progress endpoint.
    operator_namespace: str = "kubetrain-system"
    operator_labels: tuple[tuple[str, str], ...] = (
        ("app.kubernetes.io/name", "kubetrain"),
        ("app.kubernetes.io/component", "operator"),
    )


@dataclass(frozen=True)
class Replica:
    """One planned replica: its role, index and name."""

    type: ReplicaType
    index: int
    name: str


AddressOf = Callable[[Replica], str]


def replica_name(job_name: str, rtype: ReplicaType | str, index: int) -> str:
    """Name of the pod and service of one replica: `<job>-<type>-<index>`."""
    return f"{job_name}-{ReplicaType(rtype).value}-{index}"


def replicas(job: TrainingJob) -> list[Replica]:
    """Every replica of the job, in TF's canonical order."""
    return [
        Replica(rtype, i, replica_name(job.metadata.name, rtype, i))
        for rtype, spec in job.spec.replicas.items()
        for i in range(spec.replicas)
    ]


def reporter(job: TrainingJob) -> Replica:
    """The replica whose success ends the job and who reports progress.

    The chief when there is one, else worker 0 (TFJob's rule, made explicit).
    """
    rtype = ReplicaType.CHIEF if job.spec.replicas.count(ReplicaType.CHIEF) else ReplicaType.WORKER
    return Replica(rtype, 0, replica_name(job.metadata.name, rtype, 0))


def cluster_spec(job: TrainingJob, address_of: AddressOf) -> dict[str, list[str]]:
    """TF_CONFIG's `cluster`: chief, worker and ps addresses."""
    cluster: dict[str, list[str]] = {}
    for replica in replicas(job):
        if replica.type in CLUSTER_TYPES:
            cluster.setdefault(replica.type.value, []).append(address_of(replica))
    return cluster


def tf_config(
    job: TrainingJob,
    replica: Replica,
    address_of: AddressOf,
    *,
    cluster: dict[str, list[str]] | None = None,
) -> str:
    """The TF_CONFIG of one replica, in the form TFJob users already know.

    Pass `cluster` (the job's `cluster_spec`) when planning many replicas.
    """
    config = {
        "cluster": cluster if cluster is not None else cluster_spec(job, address_of),
        "task": {"type": replica.type.value, "index": replica.index},
        "environment": "cloud",
    }
    return json.dumps(config, separators=(",", ":"))


def service_address(job: TrainingJob, settings: Settings) -> AddressOf:
    """Addresses through the per-replica headless services (`<pod>.<ns>.svc:2222`)."""
    namespace = job.metadata.namespace or "default"
    return lambda r: f"{r.name}.{namespace}.{settings.cluster_domain}:{settings.port}"


def job_env(job: TrainingJob) -> str:
    """The job as the trainer reads it: name, namespace and the validated spec."""
    payload = {
        "metadata": {
            "name": job.metadata.name,
            "namespace": job.metadata.namespace,
            "uid": job.metadata.uid,
        },
        "spec": job.spec.wire(),
    }
    return json.dumps(payload, separators=(",", ":"))


def trainer_env(
    job: TrainingJob,
    replica: Replica,
    address_of: AddressOf,
    progress_port: int,
    *,
    cluster: dict[str, list[str]] | None = None,
    job_json: str | None = None,
) -> dict[str, str]:
    """Environment shared by pods and local processes.

    `cluster` and `job_json` are the job's `cluster_spec` and `job_env`, when
    the caller already built them once for all replicas.
    """
    return {
        "TF_CONFIG": tf_config(job, replica, address_of, cluster=cluster),
        "KUBETRAIN_JOB": job_json if job_json is not None else job_env(job),
        "KUBETRAIN_REPLICA_TYPE": replica.type.value,
        "KUBETRAIN_REPLICA_INDEX": str(replica.index),
        "KUBETRAIN_PROGRESS_PORT": str(progress_port),
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }


def labels(job: TrainingJob, replica: Replica | None = None) -> dict[str, str]:
    """Labels that select a job's objects (and one replica's, when given)."""
    out = {LABEL_JOB: job.metadata.name, "app.kubernetes.io/managed-by": "kubetrain"}
    if replica is not None:
        out[LABEL_TYPE] = replica.type.value
        out[LABEL_INDEX] = str(replica.index)
    return out


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    """The controller reference that lets Kubernetes garbage-collect children."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(job: TrainingJob, replica: Replica) -> dict[str, Any]:
    return {
        "name": replica.name,
        "namespace": job.metadata.namespace or "default",
        "labels": labels(job, replica),
        "ownerReferences": [owner_reference(job)],
    }


def _resources(job: TrainingJob, replica: Replica) -> dict[str, Any]:
    """Requests and limits; quantities are strings, as the Pod API defines them."""
    spec = getattr(job.spec.replicas, replica.type.value)
    requests = {k: str(v) for k, v in spec.resources.requests.items()}
    limits = {k: str(v) for k, v in spec.resources.limits.items()}
    if spec.gpus:
        limits[GPU_RESOURCE] = str(spec.gpus)
    tpu = job.spec.tpu
    if tpu is not None and replica.type in (ReplicaType.CHIEF, ReplicaType.WORKER):
        requests[TPU_RESOURCE] = limits[TPU_RESOURCE] = str(tpu.chips_per_worker)
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _tpu_env(job: TrainingJob, replica: Replica, settings: Settings) -> dict[str, str]:
    """What GKE's TPU webhook would set: worker id and every worker's hostname."""
    if job.spec.tpu is None or replica.type not in (ReplicaType.CHIEF, ReplicaType.WORKER):
        return {}
    namespace = job.metadata.namespace or "default"
    hosts = [
        f"{r.name}.{namespace}.{settings.cluster_domain}"
        for r in replicas(job)
        if r.type in (ReplicaType.CHIEF, ReplicaType.WORKER)
    ]
    env = {
        "TPU_WORKER_ID": str(hosts.index(f"{replica.name}.{namespace}.{settings.cluster_domain}")),
        "TPU_WORKER_HOSTNAMES": ",".join(hosts),
    }
    if job.spec.tpu.address:
        env["KUBETRAIN_TPU_ADDRESS"] = job.spec.tpu.address
    return env


def _volumes(job: TrainingJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scratch space (the root filesystem is read-only), HDFS config and data volumes."""
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH_DIR}]
    data = job.spec.data
    hdfs = data.hdfs if data is not None else None
    for name, source, path in _hdfs_volumes(hdfs) if hdfs is not None else []:
        volumes.append({"name": name, **source})
        mounts.append({"name": name, "mountPath": path, "readOnly": True})
    for volume in data.volumes if data is not None else []:
        volumes.append({"name": volume.name, **volume.source})
        mounts.append(
            {"name": volume.name, "mountPath": volume.mount_path, "readOnly": volume.read_only}
        )
    return volumes, mounts


def _hdfs_volumes(hdfs: HDFSSpec) -> list[tuple[str, dict[str, Any], str]]:
    """(name, source, mount path) of the Hadoop conf, krb5.conf and keytab the spec names,
    all read-only: the trainer only reads them."""
    out: list[tuple[str, dict[str, Any], str]] = []
    if hdfs.config_map:
        out.append(("hadoop-conf", {"configMap": {"name": hdfs.config_map}}, HADOOP_CONF_DIR))
    if hdfs.krb5_config_map:
        # Only the krb5.conf key: a missing key fails the mount instead of a login far later.
        items = [{"key": KRB5_CONF, "path": KRB5_CONF}]
        source = {"configMap": {"name": hdfs.krb5_config_map, "items": items}}
        out.append(("krb5-conf", source, KRB5_DIR))
    if hdfs.kerberos_secret:
        source = {"secret": {"secretName": hdfs.kerberos_secret, "defaultMode": 0o400}}
        out.append(("keytab", source, KEYTAB_DIR))
    return out


def _hdfs_env(job: TrainingJob) -> dict[str, str]:
    hdfs = job.spec.data.hdfs if job.spec.data is not None else None
    if hdfs is None:
        return {}
    env = {}
    if hdfs.config_map:
        env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
    if hdfs.krb5_config_map:
        env["KRB5_CONFIG"] = f"{KRB5_DIR}/{KRB5_CONF}"
    if hdfs.kerberos_secret:
        env["KUBETRAIN_KEYTAB"] = f"{KEYTAB_DIR}/keytab"
        # hdfs-native keeps a keytab login's ticket in memory and never writes this
        # cache, so it is harmless; it is read when no principal is given (a ticket
        # from a kinit init container) and named in a failed login's message.
        env["KRB5CCNAME"] = f"{SCRATCH_DIR}/krb5cc"
    if hdfs.principal:
        env["KUBETRAIN_PRINCIPAL"] = hdfs.principal
    if hdfs.user:
        env["HADOOP_USER_NAME"] = hdfs.user
    return env


SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class JobParts:
    """What every pod of one job has in common, built once per job: rebuilt per
    pod, the cluster spec makes planning N pods O(N²) and the spec is dumped N
    times (a third of the operator's CPU at 512 workers)."""

    address_of: AddressOf
    cluster: dict[str, list[str]]
    job_json: str
    reporter: Replica


def job_parts(job: TrainingJob, settings: Settings) -> JobParts:
    address_of = service_address(job, settings)
    return JobParts(address_of, cluster_spec(job, address_of), job_env(job), reporter(job))


def pods(job: TrainingJob, wanted: list[Replica], settings: Settings) -> list[dict[str, Any]]:
    """The Pods of `wanted`, sharing one `JobParts`."""
    parts = job_parts(job, settings)
    return [pod(job, r, settings, parts) for r in wanted]


def pod(
    job: TrainingJob, replica: Replica, settings: Settings, parts: JobParts | None = None
) -> dict[str, Any]:
    """The Pod of one replica. Pods never restart in place: the operator
    recreates them, so every restart counts against backoffLimit."""
    spec = getattr(job.spec.replicas, replica.type.value)
    parts = parts or job_parts(job, settings)
    env = {
        **trainer_env(
            job,
            replica,
            parts.address_of,
            settings.progress_port,
            cluster=parts.cluster,
            job_json=parts.job_json,
        ),
        **_tpu_env(job, replica, settings),
        **_hdfs_env(job),
    }
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    env_list += [e.wire() for e in spec.env]
    volumes, mounts = _volumes(job)
    ports = [{"name": PORT_NAME, "containerPort": settings.port}]
    if replica == parts.reporter:
        ports.append({"name": PROGRESS_PORT_NAME, "containerPort": settings.progress_port})
    container = {
        "name": CONTAINER,
        "image": spec.image or job.spec.image or settings.default_image,
        "command": TRAINER_COMMAND,
        "env": env_list,
        "ports": ports,
        "resources": _resources(job, replica),
        "volumeMounts": mounts,
        "securityContext": SECURITY_CONTEXT,
        # The trainer writes why it failed there; the tail of its log otherwise.
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    node_selector = dict(spec.node_selector)
    if job.spec.tpu is not None and replica.type in (ReplicaType.CHIEF, ReplicaType.WORKER):
        node_selector["cloud.google.com/gke-tpu-accelerator"] = job.spec.tpu.accelerator
        node_selector["cloud.google.com/gke-tpu-topology"] = job.spec.tpu.topology
    tolerations = [t.wire() for t in spec.tolerations]
    if spec.gpus:
        tolerations.append(GPU_TOLERATION)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "hostname": replica.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY_CONTEXT,
        "containers": [container],
        "volumes": volumes,
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.affinity:
        pod_spec["affinity"] = spec.affinity
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(job, replica),
        "spec": pod_spec,
    }


def service(job: TrainingJob, replica: Replica, settings: Settings) -> dict[str, Any]:
    """The headless Service that gives one replica its stable DNS name."""
    ports = [{"name": PORT_NAME, "port": settings.port, "targetPort": settings.port}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, replica),
        "spec": {
            "clusterIP": "None",
            "selector": labels(job, replica),
            "ports": ports,
            "publishNotReadyAddresses": True,
        },
    }


def network_policy(job: TrainingJob, settings: Settings) -> dict[str, Any]:
    """Ingress to one job's pods: the TF port from its own pods, progress from the operator.

    Per job because a NetworkPolicy cannot say "same job as me": the
    namespace-wide manifests/networkpolicy.yaml lets every job in a namespace
    reach every other job's TF port; this one keeps jobs apart. Egress stays
    open (trainers read HDFS and object stores).
    """
    own_pods = {"podSelector": {"matchLabels": {LABEL_JOB: job.metadata.name}}}
    operator = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": settings.operator_namespace}
        },
        "podSelector": {"matchLabels": dict(settings.operator_labels)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": job.metadata.name,
            "namespace": job.metadata.namespace or "default",
            "labels": labels(job),
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_JOB: job.metadata.name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [own_pods], "ports": [{"protocol": "TCP", "port": settings.port}]},
                {
                    "from": [operator],
                    "ports": [{"protocol": "TCP", "port": settings.progress_port}],
                },
            ],
        },
    }


def plan(job: TrainingJob, settings: Settings) -> list[dict[str, Any]]:
    """Every object the operator creates for a job: services first, then pods."""
    planned = replicas(job)
    return [service(job, r, settings) for r in planned] + pods(job, planned, settings)
