"""The TrainingJob API: pydantic models that are the one source of truth.

The CRD schema (crd.py), `kubetrain validate`, the planner and the trainer all
read these models, so a field is defined, defaulted and documented once. Field
names follow Kubeflow's TFJob where the concept is the same; camelCase on the
wire, snake_case in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "kubetrain.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainingJob"
PLURAL = "trainingjobs"
SINGULAR = "trainingjob"
SHORT_NAMES = ["tj"]

# Pod and service names are `<job>-<type>-<index>` and must be DNS-1035 labels
# (<= 63 chars): "-evaluator-0" and "-worker-4095" are the longest suffixes.
MAX_REPLICAS = 4096
MAX_JOB_NAME_LENGTH = 63 - len("-worker-4095")
DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
ENTRYPOINT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
TPU_TOPOLOGY = r"^[1-9][0-9]*x[1-9][0-9]*(x[1-9][0-9]*)?$"
# A restart back-off longer than a day is a job that should have failed.
MAX_RESTART_BACKOFF_SECONDS = 86400

# A Kubernetes resource quantity: `4Gi`, `500m` or a plain number.
Quantity = Annotated[str | int, WithJsonSchema({"x-kubernetes-int-or-string": True})]
# Kubernetes objects that we pass through unchanged (affinity, volume sources).
FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class Model(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected, enums kept as values."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the apiserver stores it: camelCase, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ReplicaType(StrEnum):
    """Roles of a TF cluster, as TF_CONFIG names them."""

    CHIEF = "chief"
    WORKER = "worker"
    PS = "ps"
    EVALUATOR = "evaluator"


class Strategy(StrEnum):
    """tf.distribute strategy; `auto` picks from the replicas and accelerators."""

    AUTO = "auto"
    MULTI_WORKER_MIRRORED = "multi_worker_mirrored"
    MIRRORED = "mirrored"
    TPU = "tpu"
    PARAMETER_SERVER = "parameter_server"
    ONE_DEVICE = "one_device"


class EnvVar(Model):
    """An environment variable for the trainer container."""

    name: str = Field(min_length=1, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: FreeForm | None = Field(
        default=None, description="A Kubernetes EnvVarSource (secretKeyRef, fieldRef, ...)."
    )


class Toleration(Model):
    """A Kubernetes toleration, copied into every pod of the replica type."""

    key: str | None = Field(default=None, description="Taint key; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(default=None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class Resources(Model):
    """Container resource requests and limits (cpu, memory, ephemeral-storage)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Minimum resources.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Maximum resources.")


class ReplicaSpec(Model):
    """One replica type: how many pods, and what each pod gets."""

    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS, description="Number of pods.")
    image: str | None = Field(
        default=None, description="Trainer image; defaults to spec.image, then the operator's."
    )
    gpus: int = Field(
        default=0, ge=0, le=16, description="NVIDIA GPUs per pod (nvidia.com/gpu limit)."
    )
    resources: Resources = Field(default_factory=Resources, description="CPU/memory per pod.")
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.")
    affinity: FreeForm | None = Field(default=None, description="Pod affinity, as in a Pod.")


class ReplicaSpecs(Model):
    """Replica types of the job; chief and evaluator have at most one pod."""

    chief: ReplicaSpec | None = Field(
        default=None, description="Coordinates training, saves the model (at most 1)."
    )
    worker: ReplicaSpec | None = Field(default=None, description="Compute workers.")
    ps: ReplicaSpec | None = Field(
        default=None, description="Parameter servers (strategy parameter_server)."
    )
    evaluator: ReplicaSpec | None = Field(
        default=None, description="Evaluates the newest checkpoint in a loop (at most 1)."
    )

    def items(self) -> list[tuple[ReplicaType, ReplicaSpec]]:
        """Present replica types in TF's canonical order."""
        pairs = [(t, getattr(self, t.value)) for t in ReplicaType]
        return [(t, spec) for t, spec in pairs if spec is not None]

    def count(self, rtype: ReplicaType) -> int:
        spec = getattr(self, rtype.value)
        return 0 if spec is None else spec.replicas


class TPUSpec(Model):
    """A Cloud TPU slice (GKE TPU node pools); excludes GPUs."""

    accelerator: str = Field(
        min_length=1, description="GKE TPU accelerator, e.g. tpu-v5-lite-podslice or v5litepod-8."
    )
    topology: str = Field(pattern=TPU_TOPOLOGY, description="Slice topology, e.g. 2x4.")
    chips_per_worker: int = Field(
        default=4, ge=1, le=8, description="google.com/tpu chips requested by each worker pod."
    )
    address: str | None = Field(
        default=None,
        description="TPU address for TPUClusterResolver (grpc://host:8470) outside GKE.",
    )
    connect_timeout_seconds: int = Field(
        default=120, ge=1, description="Fail when the TPU does not answer within this time."
    )


class ModelSpec(Model):
    """The Keras model: a built-in, or a user function `package.module:function`."""

    builtin: Literal["mlp", "cnn", "resnet50"] | None = Field(
        default=None, description="Built-in architecture."
    )
    entrypoint: str | None = Field(
        default=None,
        pattern=ENTRYPOINT,
        description="`package.module:function` returning a keras.Model (compiled or not).",
    )
    kwargs: FreeForm = Field(
        default_factory=dict, description="Keyword arguments for the builder function."
    )
    num_classes: int = Field(default=10, ge=1, description="Output classes of built-ins.")


class FeatureSpec(Model):
    """One named tensor in each record."""

    name: str = Field(min_length=1, description="Feature key / column name.")
    shape: list[int] = Field(
        default_factory=list, description="Shape of one example's value; [] for a scalar."
    )
    dtype: Literal["float32", "int64", "string"] = Field(default="float32", description="Type.")


class HDFSSpec(Model):
    """How trainer pods reach HDFS."""

    config_map: str | None = Field(
        default=None, description="ConfigMap with core-site.xml/hdfs-site.xml (HADOOP_CONF_DIR)."
    )
    kerberos_secret: str | None = Field(
        default=None, description="Secret with a `keytab` key, mounted read-only."
    )
    principal: str | None = Field(default=None, description="Kerberos principal of the keytab.")
    krb5_config_map: str | None = Field(
        default=None,
        description="ConfigMap with a `krb5.conf` key (the realm's KDCs), mounted as KRB5_CONFIG.",
    )
    user: str | None = Field(default=None, description="HDFS user for simple authentication.")


#: The operator's own volumes in every trainer pod (name -> mount path): scratch
#: space, then what spec.data.hdfs names. data.volumes may reuse neither.
OPERATOR_VOLUMES = {
    "scratch": "/tmp",
    "hadoop-conf": "/etc/hadoop/conf",
    "krb5-conf": "/etc/kubetrain/krb5",
    "keytab": "/etc/kubetrain/keytab",
}
MAX_DATA_VOLUMES = 32


class VolumeSpec(Model):
    """A Kubernetes volume mounted into every trainer pod (e.g. a PVC with data)."""

    name: str = Field(pattern=DNS_1035, max_length=63, description="Volume name.")
    mount_path: str = Field(
        pattern=r"^/", max_length=4096, description="Where the volume appears in the pod."
    )
    read_only: bool = Field(default=True, description="Mount read-only.")
    source: FreeForm = Field(
        description="A Kubernetes volume source, e.g. {persistentVolumeClaim: {claimName: x}}."
    )


class DataSpec(Model):
    """Training input: where the records are and what they contain."""

    train: str = Field(
        min_length=1,
        description="File, directory or glob; local path, hdfs:// or viewfs:// URI.",
    )
    validation: str | None = Field(default=None, description="Validation input, as train.")
    format: Literal["tfrecord", "parquet", "csv"] = Field(
        default="tfrecord", description="Record format."
    )
    features: list[FeatureSpec] = Field(
        min_length=1, description="Input features; several become a dict of inputs."
    )
    label: FeatureSpec = Field(description="The label (target) of each record.")
    shuffle_buffer: int = Field(default=10000, ge=0, description="0 disables shuffling.")
    hdfs: HDFSSpec | None = Field(default=None, description="HDFS configuration and credentials.")
    volumes: list[VolumeSpec] = Field(
        default_factory=list, max_length=MAX_DATA_VOLUMES, description="Volumes with data."
    )


class TrainingSpec(Model):
    """Hyper-parameters of Keras `fit`."""

    epochs: int = Field(default=1, ge=1, description="Epochs to train.")
    batch_size_per_replica: int = Field(
        default=32, ge=1, description="Batch per replica; global batch = this x replicas in sync."
    )
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field(
        default="adam", description="Optimizer."
    )
    learning_rate: float = Field(default=0.001, gt=0, description="Learning rate.")
    loss: str = Field(
        default="sparse_categorical_crossentropy", min_length=1, description="Keras loss name."
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["accuracy"], description="Keras metric names."
    )
    mixed_precision: bool = Field(default=False, description="mixed_float16 (GPU) / bf16 (TPU).")
    jit_compile: bool = Field(default=False, description="Compile steps with XLA.")
    steps_per_epoch: int | None = Field(
        default=None, ge=1, description="Steps per epoch; default: one pass over the data."
    )
    seed: int = Field(default=42, ge=0, description="Seed for shuffling and initialisation.")


class OutputSpec(Model):
    """Where the trained model, checkpoints and logs go."""

    model_dir: str | None = Field(
        default=None, description="Final model (written atomically by the chief)."
    )
    checkpoint_dir: str | None = Field(
        default=None,
        description="Per-worker epoch checkpoints (resume, evaluator). Default: pod scratch, "
        "lost when a pod is replaced; use a volume or hdfs:// to resume across restarts.",
    )
    tensorboard: bool = Field(default=False, description="Write TensorBoard logs.")
    export_format: Literal["keras", "savedmodel"] = Field(
        default="keras", description="`.keras` archive or an inference SavedModel."
    )


class PredictSpec(Model):
    """Batch inference with an exported model (spec.task: predict)."""

    model: str = Field(min_length=1, description="Exported model path or URI.")
    input: str = Field(min_length=1, description="Input records, as data.train.")
    output: str = Field(min_length=1, description="Parquet output path or URI.")
    id_key: str | None = Field(default=None, description="Column copied next to predictions.")
    batch_size: int = Field(default=256, ge=1, description="Inference batch size.")


class RunPolicy(Model):
    """Lifecycle policy, with TFJob's names and meanings."""

    restart_policy: Literal["OnFailure", "Never", "ExitCode"] = Field(
        default="OnFailure",
        description="ExitCode: 1-127 permanent, >=128 retryable (TFJob's rule).",
    )
    backoff_limit: int = Field(
        default=3, ge=0, description="Restarts (of pods or the worker group) before Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Fail the job when it runs longer than this."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the job this long after it finished."
    )
    clean_pod_policy: Literal["All", "Running", "None"] = Field(
        default="Running",
        description="Pods deleted when the job finishes; ps/evaluator always stop.",
    )
    suspend: bool = Field(default=False, description="Delete pods and hold the job (Kueue).")
    scheduling_timeout_seconds: int = Field(
        default=600, ge=1, description="Fail as Unschedulable when pods stay Pending this long."
    )
    restart_backoff_seconds: int = Field(
        default=10,
        ge=0,
        le=MAX_RESTART_BACKOFF_SECONDS,
        description="Wait before the first restart's pods are created; each further restart "
        "waits twice as long (kubelet's CrashLoopBackOff). 0 restarts at once.",
    )
    max_restart_backoff_seconds: int = Field(
        default=300,
        ge=0,
        le=MAX_RESTART_BACKOFF_SECONDS,
        description="Longest wait before a restart: the doubling stops here.",
    )


# --- cross-field rules: one place, two evaluators -----------------------------


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the apiserver, a predicate for Python.

    Both forms sit together so a change to one is a visible change to the
    other; tests check that they agree against the real apiserver.
    """

    cel: str
    message: str
    field_path: str
    check: Callable[[Any], bool]


def _gpus(spec: ReplicaSpec | None) -> int:
    return 0 if spec is None else spec.gpus


def _data_volumes(spec: TrainingJobSpec) -> list[VolumeSpec]:
    return spec.data.volumes if spec.data is not None else []


def _cel_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


_HAS_VOLUMES = "!has(self.data) || !has(self.data.volumes) || "


SPEC_RULES = [
    Rule(
        cel="has(self.replicas.chief) || has(self.replicas.worker)",
        message="needs a chief or at least one worker",
        field_path=".replicas",
        check=lambda s: s.replicas.chief is not None or s.replicas.worker is not None,
    ),
    Rule(
        cel="!has(self.replicas.chief) || self.replicas.chief.replicas <= 1",
        message="chief: at most 1 replica",
        field_path=".replicas.chief.replicas",
        check=lambda s: s.replicas.count(ReplicaType.CHIEF) <= 1,
    ),
    Rule(
        cel="!has(self.replicas.evaluator) || self.replicas.evaluator.replicas <= 1",
        message="evaluator: at most 1 replica",
        field_path=".replicas.evaluator.replicas",
        check=lambda s: s.replicas.count(ReplicaType.EVALUATOR) <= 1,
    ),
    Rule(
        cel="!has(self.tpu) || ((!has(self.replicas.chief) || self.replicas.chief.gpus == 0)"
        " && (!has(self.replicas.worker) || self.replicas.worker.gpus == 0))",
        message="tpu cannot be combined with gpus on chief or worker replicas",
        field_path=".tpu",
        check=lambda s: (
            s.tpu is None or (_gpus(s.replicas.chief) == 0 and _gpus(s.replicas.worker) == 0)
        ),
    ),
    Rule(
        cel="self.strategy != 'tpu' || has(self.tpu)",
        message="strategy tpu needs a tpu block",
        field_path=".strategy",
        check=lambda s: s.strategy != Strategy.TPU or s.tpu is not None,
    ),
    Rule(
        cel="self.strategy != 'parameter_server'"
        " || (has(self.replicas.ps) && self.replicas.ps.replicas > 0)",
        message="strategy parameter_server needs replicas.ps with replicas > 0",
        field_path=".strategy",
        check=lambda s: (
            s.strategy != Strategy.PARAMETER_SERVER or s.replicas.count(ReplicaType.PS) > 0
        ),
    ),
    Rule(
        cel="!has(self.replicas.ps) || self.replicas.ps.replicas == 0"
        " || self.strategy in ['auto', 'parameter_server']",
        message="replicas.ps needs strategy auto or parameter_server",
        field_path=".replicas.ps",
        check=lambda s: (
            s.replicas.count(ReplicaType.PS) == 0
            or s.strategy in (Strategy.AUTO, Strategy.PARAMETER_SERVER)
        ),
    ),
    Rule(
        cel="!has(self.replicas.ps) || self.replicas.ps.replicas == 0"
        " || (has(self.replicas.chief) && self.replicas.chief.replicas == 1)",
        message="replicas.ps needs a chief: it coordinates parameter-server training",
        field_path=".replicas.chief",
        check=lambda s: (
            s.replicas.count(ReplicaType.PS) == 0 or s.replicas.count(ReplicaType.CHIEF) == 1
        ),
    ),
    Rule(
        cel="self.runPolicy.restartBackoffSeconds <= self.runPolicy.maxRestartBackoffSeconds",
        message="restartBackoffSeconds must not exceed maxRestartBackoffSeconds",
        field_path=".runPolicy.restartBackoffSeconds",
        check=lambda s: (
            s.run_policy.restart_backoff_seconds <= s.run_policy.max_restart_backoff_seconds
        ),
    ),
    Rule(
        cel=_HAS_VOLUMES + "self.data.volumes.all(v, !(v.name in "
        f"{_cel_list(OPERATOR_VOLUMES)}) && !(v.mountPath in "
        f"{_cel_list(OPERATOR_VOLUMES.values())}))",
        message="the operator's own volumes take these names and mount paths: "
        + ", ".join(f"{name} at {path}" for name, path in OPERATOR_VOLUMES.items()),
        field_path=".data.volumes",
        check=lambda s: all(
            v.name not in OPERATOR_VOLUMES and v.mount_path not in OPERATOR_VOLUMES.values()
            for v in _data_volumes(s)
        ),
    ),
    Rule(
        cel=_HAS_VOLUMES + "self.data.volumes.all(a, "
        "self.data.volumes.exists_one(b, b.name == a.name) && "
        "self.data.volumes.exists_one(b, b.mountPath == a.mountPath))",
        message="each volume needs a name and a mount path of its own",
        field_path=".data.volumes",
        check=lambda s: all(
            len({getattr(v, key) for v in _data_volumes(s)}) == len(_data_volumes(s))
            for key in ("name", "mount_path")
        ),
    ),
    Rule(
        cel="self.task != 'train' || has(self.data)",
        message="task train needs data",
        field_path=".data",
        check=lambda s: s.task != "train" or s.data is not None,
    ),
    Rule(
        cel="self.task != 'predict' || has(self.predict)",
        message="task predict needs predict",
        field_path=".predict",
        check=lambda s: s.task != "predict" or s.predict is not None,
    ),
]

MODEL_RULES = [
    Rule(
        cel="has(self.builtin) != has(self.entrypoint)",
        message="set exactly one of builtin or entrypoint",
        field_path=".builtin",
        check=lambda m: (m.builtin is None) != (m.entrypoint is None),
    ),
]

NAME_RULE = Rule(
    cel=f"size(self.metadata.name) <= {MAX_JOB_NAME_LENGTH}",
    message=f"at most {MAX_JOB_NAME_LENGTH} characters, so that pod and "
    "service names stay valid DNS labels",
    field_path="metadata.name",
    check=lambda job: len(job.metadata.name) <= MAX_JOB_NAME_LENGTH,
)


def _apply_rules(obj: Any, rules: list[Rule], prefix: str) -> Any:
    errors = [f"{prefix}{r.field_path}: {r.message}" for r in rules if not r.check(obj)]
    if errors:
        raise ValueError("; ".join(errors))
    return obj


class TrainingJobSpec(Model):
    """What to train, on how many replicas, and how the job lives and dies."""

    image: str | None = Field(default=None, description="Trainer image for every replica.")
    task: Literal["train", "predict"] = Field(default="train", description="Train or predict.")
    strategy: Strategy = Field(default=Strategy.AUTO, description="tf.distribute strategy.")
    replicas: ReplicaSpecs = Field(description="Replica types: chief, worker, ps, evaluator.")
    tpu: TPUSpec | None = Field(default=None, description="Run on a Cloud TPU slice.")
    model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(builtin="mlp"), description="The Keras model."
    )
    data: DataSpec | None = Field(default=None, description="Training input (task train).")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="fit() settings.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="Model and checkpoints.")
    predict: PredictSpec | None = Field(default=None, description="Inference (task predict).")
    success_policy: Literal["chief", "allWorkers"] = Field(
        default="chief",
        description="chief: the chief (else worker 0) succeeding ends the job; "
        "allWorkers: every worker must succeed.",
    )
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Lifecycle policy.")

    @model_validator(mode="after")
    def _cross_field(self) -> TrainingJobSpec:
        _apply_rules(self.model, MODEL_RULES, "spec.model")
        return _apply_rules(self, SPEC_RULES, "spec")


class ObjectMeta(Model):
    """The part of Kubernetes metadata a TrainingJob file needs."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=DNS_1035, description="Job name; prefix of every pod name.")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None


# --- status -------------------------------------------------------------------


class Condition(Model):
    """A TFJob-style condition: Created, Running, Restarting, Succeeded, Failed, Suspended."""

    type: Literal["Created", "Running", "Restarting", "Succeeded", "Failed", "Suspended"] = Field(
        description="Condition type."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason, also the Event's reason.")
    message: str = Field(default="", description="What happened, naming the pod and exit code.")
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed."
    )


class ReplicaStatus(Model):
    """Pod counts of one replica type."""

    active: int = Field(default=0, description="Pending or running pods.")
    succeeded: int = Field(default=0, description="Pods that exited 0.")
    failed: int = Field(default=0, description="Pods that failed.")


class Progress(Model):
    """Live training progress, reported by the chief and copied by the operator."""

    epoch: int = Field(default=0, description="Epochs finished.")
    epochs: int | None = Field(default=None, description="Epochs planned.")
    step: int = Field(default=0, description="Training steps done, across epochs.")
    loss: float | None = Field(default=None, description="Latest training loss.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Latest metrics (accuracy, val_loss, ...)."
    )
    examples_per_second: float | None = Field(
        default=None, description="Training throughput, all replicas."
    )
    eta_seconds: float | None = Field(default=None, description="Estimated seconds left.")
    updated_at: str | None = Field(default=None, description="When the chief reported this.")


class TrainingJobStatus(Model):
    """Observed state, written only by the operator."""

    phase: Literal[
        "Pending", "Created", "Running", "Restarting", "Succeeded", "Failed", "Suspended"
    ] = Field(default="Pending", description="Where the job is in its life.")
    conditions: list[Condition] = Field(
        default_factory=list, description="TFJob-style conditions, one per type."
    )
    replica_statuses: dict[str, ReplicaStatus] = Field(
        default_factory=dict, description="Pod counts by replica type."
    )
    progress: Progress | None = Field(default=None, description="Live training progress.")
    start_time: str | None = Field(default=None, description="When the job started running.")
    completion_time: str | None = Field(default=None, description="When it succeeded or failed.")
    restart_count: int = Field(
        default=0, description="Restarts of pods or of the worker group (vs backoffLimit)."
    )
    last_restart_time: str | None = Field(
        default=None,
        description="When the latest restart began; its pods are created once the "
        "restart back-off has passed.",
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation this status describes."
    )


class TrainingJob(Model):
    """A whole TrainingJob object, as in a YAML file or from the apiserver."""

    api_version: Literal["kubetrain.io/v1alpha1"] = API_VERSION
    kind: Literal["TrainingJob"] = KIND
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> TrainingJob:
        return _apply_rules(self, [NAME_RULE], "")


def is_valid_name(name: str) -> bool:
    """True when `name` can prefix every pod and service name of a job."""
    return bool(re.match(DNS_1035, name)) and len(name) <= MAX_JOB_NAME_LENGTH


def format_errors(err: ValidationError) -> list[str]:
    """One line per problem: the YAML path of the field, what is wrong, the value."""
    lines = []
    for error in err.errors():
        path = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if error["type"] != "value_error" and not isinstance(value, dict | list):
            message += f", got {value!r}"
        lines.append(f"{path}: {message}" if path and not message.startswith(path) else message)
    return lines
