"""Input errors name the file and the key: real TFRecords, real TensorFlow errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrain_operator.api import TrainingJob
from kubetrain_trainer import diagnosis
from kubetrain_trainer.config import TrainerConfig
from kubetrain_trainer.models import EntrypointError, build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.trainer


def _config(train: Path, **data: object) -> TrainerConfig:
    doc = yaml.safe_load((ROOT / "examples" / "digits-local.yaml").read_text())
    doc["spec"]["data"].update(train=str(train), validation=None, **data)
    return TrainerConfig(
        job=TrainingJob.model_validate(doc),
        tf_config={},
        task_type="worker",
        task_index=0,
        progress_port=None,
        work_dir=train.parent,
    )


def _first_error(cfg: TrainerConfig) -> Exception:
    """The error tf.data itself raises when reading cfg's input as the pipeline does."""
    import tensorflow as tf

    from kubetrain_trainer.data import files, tfrecord

    paths = files.list_files(cfg.job.spec.data.train)
    ds = tfrecord.parse(tfrecord.dataset(paths, cfg.job.spec.data).batch(8), cfg.job.spec.data)
    with pytest.raises(tf.errors.OpError) as caught:
        for _ in ds:
            pass
    return caught.value


def test_a_corrupt_file_is_named(digits_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train"
    shutil.copytree(digits_dir / "train", train)
    bad = sorted(train.iterdir())[1]
    raw = bytearray(bad.read_bytes())
    raw[100:110] = b"x" * 10
    bad.write_bytes(raw)
    cfg = _config(train)

    message = diagnosis.explain_input_error(cfg, _first_error(cfg))

    assert message is not None and message.startswith(f"{bad}: corrupt TFRecord file")
    assert "corrupted record at" in message and "function_node" not in message


def test_a_wrong_feature_key_names_the_keys_present(digits_dir: Path) -> None:
    features = [{"name": "pixelz", "shape": [8, 8, 1], "dtype": "float32"}]
    cfg = _config(digits_dir / "train", features=features)

    message = diagnosis.explain_input_error(cfg, _first_error(cfg))

    assert message is not None
    assert "spec.data.features key 'pixelz' is not in its records" in message
    assert message.endswith("keys present: label, pixels")


def test_good_input_is_not_blamed(digits_dir: Path) -> None:
    import tensorflow as tf

    cfg = _config(digits_dir / "train")
    err = tf.errors.InvalidArgumentError(None, None, "some other op failed")
    assert diagnosis.explain_input_error(cfg, err) is None


def test_an_entrypoint_that_raises_is_named() -> None:
    from kubetrain_operator.api import ModelSpec

    spec = ModelSpec(entrypoint="json:loads", kwargs={"s": "{"})
    with pytest.raises(EntrypointError, match=r"^spec.model.entrypoint json:loads raised JSON"):
        build(spec, None)


def _outage_midway(said: str) -> Any:
    """A tf.data pipeline whose reader hits a NameNode outage after one record,
    as the trainer's streaming HDFS reader does."""
    import tensorflow as tf

    from kubetrain_trainer.data.hdfs import HdfsUnavailableError

    def records() -> Iterator[list[bytes]]:
        yield [b"a"]
        raise HdfsUnavailableError(said)

    spec = tf.TensorSpec([None], tf.string)
    return tf.data.Dataset.from_generator(records, output_signature=spec).unbatch()


def test_an_hdfs_outage_inside_tf_data_stays_an_outage() -> None:
    import tensorflow as tf

    said = "hdfs://nn:8020/d/part-0: cannot reach the HDFS NameNode of hdfs://nn:8020: refused"
    ds = _outage_midway(said)
    with pytest.raises(tf.errors.UnknownError) as caught:
        for _ in ds:
            pass

    assert diagnosis.hdfs_outage(caught.value) == said
    assert (
        diagnosis.hdfs_outage(tf.errors.UnknownError(None, None, "ValueError: x\nTraceback"))
        is None
    )


def test_an_hdfs_outage_inside_fit_stays_an_outage() -> None:
    """Inside a tf.function (as in `fit`) TF words the same error differently."""
    import tensorflow as tf

    said = "hdfs://nn:8020/d/part-0: cannot reach the HDFS NameNode of hdfs://nn:8020: refused"
    ds = _outage_midway(said)

    @tf.function
    def drain(iterator: Any) -> None:
        for _ in tf.range(3):
            next(iterator)

    with pytest.raises(tf.errors.UnknownError) as caught:
        drain(iter(ds))

    assert "Graph execution error" in str(caught.value)
    assert diagnosis.hdfs_outage(caught.value) == said
