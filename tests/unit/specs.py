"""Hypothesis strategies for TrainingJob documents, valid by construction."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from kubetrain_operator.api import MAX_JOB_NAME_LENGTH

names = st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True).filter(
    lambda n: len(n) <= MAX_JOB_NAME_LENGTH
)
feature = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "pixels", "features"])},
    optional={
        "shape": st.lists(st.integers(1, 64), max_size=3),
        "dtype": st.sampled_from(["float32", "int64"]),
    },
)
quantity = st.one_of(st.integers(1, 64), st.sampled_from(["500m", "2", "4Gi", "512Mi"]))


def replica(max_replicas: int, gpus: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, Any] = {
        "resources": st.fixed_dictionaries(
            {}, optional={"requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), quantity)}
        ),
        "env": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["A", "B_C"]), "value": st.text()}),
            max_size=2,
        ),
        "nodeSelector": st.dictionaries(st.sampled_from(["pool", "zone"]), st.text(max_size=5)),
    }
    if gpus:
        optional["gpus"] = st.integers(0, 8)
    return st.fixed_dictionaries({"replicas": st.integers(0, max_replicas)}, optional=optional)


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid TrainingJob document in wire form (camelCase)."""
    use_tpu = draw(st.booleans())
    replicas: dict[str, Any] = {"worker": draw(replica(8, gpus=not use_tpu))}
    if draw(st.booleans()):
        replicas["chief"] = draw(replica(1, gpus=not use_tpu))
    if draw(st.booleans()):
        replicas["evaluator"] = draw(replica(1, gpus=False))
    spec: dict[str, Any] = {
        "replicas": replicas,
        "model": draw(
            st.one_of(
                st.fixed_dictionaries({"builtin": st.sampled_from(["mlp", "cnn", "resnet50"])}),
                st.just({"entrypoint": "mypkg.models:build", "kwargs": {"units": 3}}),
            )
        ),
        "data": {
            "train": draw(st.sampled_from(["hdfs://nn:8020/d/train", "/data/train/*.tfrecord"])),
            "format": draw(st.sampled_from(["tfrecord", "parquet", "csv"])),
            "features": draw(st.lists(feature, min_size=1, max_size=3)),
            "label": {"name": "label", "dtype": "int64"},
        },
        "training": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "epochs": st.integers(1, 100),
                    "batchSizePerReplica": st.integers(1, 1024),
                    "learningRate": st.floats(1e-6, 1.0),
                    "mixedPrecision": st.booleans(),
                },
            )
        ),
        "runPolicy": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "restartPolicy": st.sampled_from(["OnFailure", "Never", "ExitCode"]),
                    "backoffLimit": st.integers(0, 10),
                    "cleanPodPolicy": st.sampled_from(["All", "Running", "None"]),
                    "activeDeadlineSeconds": st.integers(1, 10**6),
                    # At most the default cap (300), so the spec stays valid.
                    "restartBackoffSeconds": st.integers(0, 300),
                },
            )
        ),
    }
    if use_tpu:
        spec["tpu"] = {"accelerator": "tpu-v5-lite-podslice", "topology": "2x4"}
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": draw(names)},
        "spec": spec,
    }


def with_value(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with the dotted `path` set to `value` (parents created)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out
