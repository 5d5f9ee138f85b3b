"""Spark → TF: pyspark prepares Parquet on the real HDFS, then 2 workers train on it.

examples/spark_prepare.py runs in its own process (Spark in local[*] mode with
its bundled Hadoop client), exactly as a user would run it; the trainer then
reads the Parquet it wrote with no JVM. Also `kubetrain data` writing to HDFS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from kubetrain_operator.api import DataSpec
from kubetrain_trainer.data import files, fs, parquet, tfrecord
from tests.trainer import runner

ROOT = Path(__file__).resolve().parents[2]
KUBETRAIN = runner.KUBETRAIN
DIGITS = 1797  # scikit-learn's digits


def _spec(fmt: str) -> DataSpec:
    doc = yaml.safe_load((ROOT / "examples" / "digits-spark.yaml").read_text())
    return DataSpec.model_validate({**doc["spec"]["data"], "format": fmt})


def _rows(fmt: str, uri: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, labels) of every file under `uri`, through the trainer's own readers."""
    spec = _spec(fmt)
    reader = {"parquet": parquet, "tfrecord": tfrecord}[fmt]
    ds = reader.parse(reader.dataset(files.list_files(uri), spec).batch(4096), spec)
    pixels, labels = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(pixels), np.concatenate(labels)


def _multiset(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, int]]:
    """(raw 0..16 pixels, label) of every row, sorted: equal whatever the row order."""
    return sorted(zip(map(bytes, np.rint(images).astype(np.uint8)), labels.tolist(), strict=True))


@pytest.fixture(scope="module")
def spark_digits(hdfs: Any) -> str:
    """examples/spark_prepare.py's Parquet output on the session's HDFS."""
    import pyspark  # noqa: F401 - `make test` installs the spark extra; fail loudly if not

    assert shutil.which("java"), "Spark needs Java 17+ (the HDFS tests need it too)"
    uri = f"{hdfs.url}/datasets/digits-spark"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "spark_prepare.py"), uri, "--fast-start"],
        capture_output=True,
        text=True,
        timeout=300,
        env=hdfs.env(),
        check=False,
    )
    print(f"\nspark_prepare.py took {time.monotonic() - started:.0f}s")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    assert f"as Parquet under {uri}" in result.stdout
    return uri


@pytest.mark.timeout(600)
def test_spark_writes_parquet_the_trainer_reads(spark_digits: str) -> None:
    train = files.list_files(f"{spark_digits}/train")
    validation = files.list_files(f"{spark_digits}/validation")
    # One file per partition (Spark's _SUCCESS marker is skipped), so workers shard by file.
    assert len(train) == 4 and len(validation) == 2
    assert all(f.endswith(".parquet") for f in train + validation)
    listed = fs.filesystem(spark_digits).listdir(f"{spark_digits}/train")
    assert any(fs.split(e.path)[1] == "_SUCCESS" for e in listed)

    x_train, y_train = _rows("parquet", f"{spark_digits}/train")
    x_val, y_val = _rows("parquet", f"{spark_digits}/validation")
    assert len(x_train) + len(x_val) == DIGITS
    assert 0.15 * DIGITS < len(x_val) < 0.25 * DIGITS
    assert sum(parquet.count(f) for f in train) == len(x_train)
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == np.float32
    assert x_train.min() == 0.0 and x_train.max() == 1.0  # raw 0..16 scaled by Spark
    assert sorted(set(y_train.tolist())) == list(range(10))

    # The same images as scikit-learn's, in some order: Spark only reshaped them.
    from sklearn.datasets import load_digits

    raw, labels = load_digits(return_X_y=True)
    ours = np.concatenate([x_train, x_val]).reshape(DIGITS, 64) * 16.0
    assert _multiset(ours, np.concatenate([y_train, y_val])) == _multiset(raw, labels)


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_two_workers_train_on_spark_prepared_parquet(
    spark_digits: str, hdfs: Any, tmp_path: Path
) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "digits-spark.yaml").read_text())
    model_dir = f"{hdfs.url}/models/digits-spark"
    doc["spec"]["data"].update(
        train=f"{spark_digits}/train", validation=f"{spark_digits}/validation"
    )
    doc["spec"]["output"]["modelDir"] = model_dir
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(doc))
    result = runner.run(job, tmp_path, env=hdfs.env())

    assert result.returncode == 0, result.stdout[-4000:]
    assert "strategy multi_worker_mirrored: 2 workers in TF_CONFIG" in result.stdout
    remote = fs.filesystem(model_dir)
    saved = json.loads(b"".join(remote.stream(f"{model_dir}/job.json")))
    print(f"\nval_accuracy {saved['metrics']['val_accuracy']:.3f}")
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    info = remote.info(f"{model_dir}/model.keras")
    assert info is not None and info.size > 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_kubetrain_data_writes_digits_to_hdfs(
    fmt: str, hdfs_dir: str, hdfs: Any, tmp_path: Path
) -> None:
    from kubetrain_trainer import datasets

    result = subprocess.run(
        [*KUBETRAIN, "data", "digits", hdfs_dir, "--format", fmt],
        capture_output=True,
        text=True,
        timeout=240,
        env=hdfs.env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"wrote {hdfs_dir} ({fmt})" in result.stdout

    local = datasets.digits(tmp_path / "local", format=fmt)
    for split, shards in (("train", 4), ("validation", 2)):
        uris = files.list_files(f"{hdfs_dir}/{split}")
        assert [fs.split(u)[1] for u in uris] == [f"part-{i:05d}.{fmt}" for i in range(shards)]
        x, y = _rows(fmt, f"{hdfs_dir}/{split}")
        x_local, y_local = _rows(fmt, str(local / split))
        np.testing.assert_array_equal(x, x_local)
        np.testing.assert_array_equal(y, y_local)


def test_kubetrain_data_rejects_an_unknown_format(tmp_path: Path) -> None:
    result = subprocess.run(
        [*KUBETRAIN, "data", "digits", str(tmp_path), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--format: unknown 'csv'; known: tfrecord, parquet" in result.stderr
    assert not any(tmp_path.iterdir())
