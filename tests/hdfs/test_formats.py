"""Every format round-trips through the real input pipeline, locally and from HDFS."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kubetrain_operator.api import DataSpec, TrainingSpec
from kubetrain_trainer.data import csv, files, fs, parquet, pipeline, tfrecord
from kubetrain_trainer.data.errors import DataError

ROWS, FILES, BATCH = 60, 3, 10

TENSOR_SPEC = DataSpec.model_validate(
    {
        "train": "unused",
        "features": [
            {"name": "vec", "shape": [2, 3], "dtype": "float32"},
            {"name": "n", "dtype": "int64"},
            {"name": "tag", "dtype": "string"},
        ],
        "label": {"name": "label", "dtype": "int64"},
    }
)
# CSV holds one value per cell: the same columns minus the tensor.
SCALAR_SPEC = TENSOR_SPEC.model_copy(update={"features": TENSOR_SPEC.features[1:]})


def _columns(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "vec": rng.random((rows, 2, 3), dtype=np.float32),
        "n": rng.integers(-(2**40), 2**40, rows),
        "tag": np.array([f"row-{seed}-{i}" for i in range(rows)]),
        "label": rng.integers(0, 10, rows),
    }


def _table(cols: dict[str, np.ndarray], spec: DataSpec) -> pa.Table:
    names = [f.name for f in [*spec.features, spec.label]]
    arrays = {
        k: pa.array(list(v.reshape(len(v), -1))) if v.ndim > 1 else pa.array(v)
        for k, v in cols.items()
        if k in names
    }
    return pa.table(arrays)


def _write(fmt: str, uri: str, cols: dict[str, np.ndarray], spec: DataSpec, tmp: Path) -> None:
    """Write one file of `fmt` at `uri` (local path or HDFS URI) the way users' tools would."""
    if fmt == "tfrecord":
        local = tmp / "staging.tfrecord"
        tfrecord.write(str(local), cols, len(cols["label"]))
        with local.open("rb") as src, fs.filesystem(uri).create(uri) as out:
            shutil.copyfileobj(src, out)
    elif fmt == "parquet":
        parquet.write(uri, _table(cols, spec), row_group_size=7)  # several row groups
    else:
        csv.write(uri, _table(cols, spec))


def _spec(fmt: str) -> DataSpec:
    return SCALAR_SPEC if fmt == "csv" else TENSOR_SPEC


def _read_all(uri: str, spec: DataSpec, workers: int = 1) -> tuple[dict[str, np.ndarray], int]:
    """Every batch of one epoch through pipeline.make_input, in order (no shuffle)."""
    training = TrainingSpec(batch_size_per_replica=BATCH)
    got = pipeline.make_input(tf.distribute.get_strategy(), spec, training, uri, False, workers)
    rows: dict[str, list[Any]] = {}
    it = iter(got.dataset)
    for _ in range(got.steps):
        features, label = next(it)
        named = features if isinstance(features, dict) else {spec.features[0].name: features}
        for k, v in {**named, spec.label.name: label}.items():
            rows.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in rows.items()}, got.steps


@pytest.fixture(params=["local", "hdfs"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "data")
    return str(request.getfixturevalue("hdfs_dir"))


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet", "csv"])
def test_round_trip(fmt: str, location: str, tmp_path: Path) -> None:
    spec = _spec(fmt).model_copy(update={"format": fmt})
    parts = [_columns(ROWS // FILES, seed) for seed in range(FILES)]
    for i, cols in enumerate(parts):
        _write(fmt, fs.join(location, "train", f"part-{i:05d}.{fmt}"), cols, spec, tmp_path)

    got, steps = _read_all(fs.join(location, "train"), spec)

    assert steps == ROWS // BATCH
    for f in [*spec.features, spec.label]:
        want = np.concatenate([p[f.name] for p in parts])
        if f.dtype == "string":
            want = np.char.encode(want)
        np.testing.assert_array_equal(got[f.name], want, err_msg=f.name)


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet", "csv"])
def test_two_workers_read_disjoint_files_that_cover_everything(
    fmt: str, hdfs_dir: str, tmp_path: Path
) -> None:
    spec = _spec(fmt).model_copy(update={"format": fmt})
    parts = [_columns(20, seed) for seed in range(FILES)]
    for i, cols in enumerate(parts):
        _write(fmt, f"{hdfs_dir}/part-{i}.{fmt}", cols, spec, tmp_path)
    names = files.list_files(hdfs_dir)
    reader = pipeline.FORMATS[fmt]

    seen = []
    for worker in range(2):
        shard = files.shard(names, 2, worker)
        ds = reader.parse(reader.dataset(shard.files, spec).batch(100), spec)
        seen.append({t for feats, _label in ds for t in feats["tag"].numpy()})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {t.encode() for p in parts for t in p["tag"]}
    counts = pipeline.count_records(reader, names, spec)
    assert counts == dict.fromkeys(names, 20)
    # worker 0 has 40 records, worker 1 has 20: the smaller shard sets the steps for both.
    assert pipeline.steps_per_epoch(spec, names, counts, 2, 5) == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(1, 97))
def test_tfrecord_framing_matches_tensorflow_for_any_chunking(
    records: list[bytes], chunk: int
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/r.tfrecord"
        with tf.io.TFRecordWriter(path) as writer:
            for r in records:
                writer.write(r)
        raw = Path(path).read_bytes()
    chunks = [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
    assert list(tfrecord.records(chunks, path)) == records


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=40))
def test_local_header_scan_counts_what_tensorflow_wrote(records: list[bytes]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/r.tfrecord"
        with tf.io.TFRecordWriter(path) as writer:
            for r in records:
                writer.write(r)
        assert tfrecord.count(path) == len(records)
        assert tfrecord.count(f"file://{path}") == len(records)


@pytest.mark.parametrize("where", ["local", "hdfs"])
def test_a_file_that_is_not_tfrecord_or_is_truncated_is_a_data_error(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spec = TENSOR_SPEC
    base = str(tmp_path / "data") if where == "local" else request.getfixturevalue("hdfs_dir")
    _write("tfrecord", f"{base}/good.tfrecord", _columns(5, 0), spec, tmp_path)
    good = b"".join(fs.filesystem(base).stream(f"{base}/good.tfrecord"))
    for name, data, error in [
        ("text.tfrecord", b"hello, this is not a TFRecord file", "not a TFRecord file"),
        ("cut.tfrecord", good[:-3], "truncated TFRecord"),
        ("short.tfrecord", good[:5], "truncated TFRecord"),
    ]:
        uri = f"{base}/{name}"
        with fs.filesystem(uri).create(uri) as out:
            out.write(data)
        with pytest.raises(DataError, match=error) as err:
            tfrecord.count(uri)
        assert uri in str(err.value)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_missing_column_is_a_data_error_naming_column_and_file(
    fmt: str, hdfs_dir: str, tmp_path: Path
) -> None:
    spec = SCALAR_SPEC
    uri = f"{hdfs_dir}/part-0.{fmt}"
    _write(fmt, uri, _columns(5, 0), spec, tmp_path)
    wrong = spec.model_copy(update={"label": spec.label.model_copy(update={"name": "target"})})
    reader = pipeline.FORMATS[fmt]
    with pytest.raises(DataError, match="target") as err:
        list(reader.batches([uri], wrong))
    assert uri in str(err.value)


def test_csv_rejects_tensor_features_with_a_clear_error(hdfs_dir: str, tmp_path: Path) -> None:
    uri = f"{hdfs_dir}/part-0.csv"
    _write("csv", uri, _columns(5, 0), SCALAR_SPEC, tmp_path)
    with pytest.raises(DataError, match="one value per cell; vec"):
        csv.count(uri, TENSOR_SPEC)
