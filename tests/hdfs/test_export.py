"""The chief's model upload to HDFS: complete or absent, never half there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from kubetrain_operator.api import TrainingJob
from kubetrain_trainer import export
from kubetrain_trainer.data import fs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> object:
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    return m


@pytest.fixture
def job() -> TrainingJob:
    return TrainingJob.model_validate(
        yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    )


def _names(uri: str) -> list[str]:
    return sorted(fs.split(e.path)[1] for e in fs.filesystem(uri).listdir(uri))


def _read(uri: str) -> bytes:
    return b"".join(fs.filesystem(uri).stream(uri))


def test_export_uploads_a_loadable_model_and_replaces_an_old_one(
    model: object, job: TrainingJob, hdfs_dir: str, tmp_path: Path
) -> None:
    import keras

    target = f"{hdfs_dir}/models/digits"
    assert export.export(model, job, target, {"accuracy": 0.5}) == target
    assert export.export(model, job, target, {"accuracy": 0.9}) == target

    assert _names(f"{hdfs_dir}/models") == ["digits"], "no staging directory left behind"
    assert _names(target) == [export.JOB_FILE, export.MODEL_FILE]
    assert json.loads(_read(f"{target}/{export.JOB_FILE}"))["metrics"] == {"accuracy": 0.9}
    local = tmp_path / export.MODEL_FILE
    local.write_bytes(_read(f"{target}/{export.MODEL_FILE}"))
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(keras.models.load_model(local).predict(x), model.predict(x))  # type: ignore[attr-defined]


def test_a_failed_upload_leaves_the_previous_model_and_no_partial_one(
    model: object, job: TrainingJob, hdfs_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{hdfs_dir}/models/digits"
    export.export(model, job, target, {"accuracy": 0.5})
    real_copy = fs.copy_tree

    def copy_then_fail(src: str, dst: str) -> None:
        real_copy(src, dst)
        raise OSError("disk full")

    monkeypatch.setattr(fs, "copy_tree", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export.export(model, job, target, {"accuracy": 0.9})
    with pytest.raises(OSError, match="disk full"):
        export.export(model, job, f"{hdfs_dir}/models/fresh", {"accuracy": 0.9})

    assert _names(f"{hdfs_dir}/models") == ["digits"]
    assert json.loads(_read(f"{target}/{export.JOB_FILE}"))["metrics"] == {"accuracy": 0.5}
