"""`task: predict`: batch inference with an exported model, written as Parquet.

Loads what export.py wrote into a model dir (`model.keras` or `saved_model/`,
plus `job.json`), reads spec.predict.input through the data layer with the
features of the job that trained the model (or spec.data when given), and
writes one row per input record, in input order: the spec.predict.idKey
column when given, `prediction` (the arg-max class of a classifier, else the
single output) and `scores` (the model's whole output row). On a TPU
(spec.tpu) the model is loaded and run under TPUStrategy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from kubetrain_operator.api import DataSpec, FeatureSpec, TrainingJob
from kubetrain_trainer import export
from kubetrain_trainer.config import ConfigError, TrainerConfig
from kubetrain_trainer.data import files as data_files
from kubetrain_trainer.data import fs, parquet, pipeline

log = logging.getLogger(__name__)

SAVED_MODEL = "saved_model"


def _download(uri: str, local: Path) -> None:
    """Copy a file or directory tree from any filesystem to `local`."""
    store = fs.filesystem(uri)
    info = store.info(uri)
    if info is None:
        raise ConfigError(f"spec.predict.model: {uri} does not exist")
    if not info.is_dir:
        local.parent.mkdir(parents=True, exist_ok=True)
        with store.open(uri) as src, open(local, "wb") as out:
            shutil.copyfileobj(src, out, fs.CHUNK)
        return
    local.mkdir(parents=True, exist_ok=True)
    for entry in store.listdir(uri):
        _download(entry.path, local / fs.split(entry.path)[1])


def trained_job(model_dir: Path) -> TrainingJob | None:
    """The job that trained the model, from the job.json export writes beside it."""
    path = model_dir / export.JOB_FILE
    if not path.exists():
        return None
    return TrainingJob.model_validate(json.loads(path.read_text())["job"])


def keras_library(archive: Path) -> str:
    """`tf_keras` for a `.keras` file saved by tf_keras (parameter_server), else `keras`."""
    with zipfile.ZipFile(archive) as zf:
        version = json.loads(zf.read("metadata.json")).get("keras_version", "3")
    return "tf_keras" if str(version).startswith("2.") else "keras"


def input_spec(
    spec_data: DataSpec | None, trained: TrainingJob | None, id_key: str | None, uri: str
) -> DataSpec:
    """The data spec to read the input with: the features, and the id as the `label`.

    The data layer yields (features, label); the label slot carries the id
    column. Without an id it carries the first feature again (and is ignored).

    Raises:
        ConfigError: neither spec.data nor the model's job.json declares features.
    """
    data = spec_data or (trained.spec.data if trained else None)
    if data is None:
        raise ConfigError(
            "spec.data: predict needs the input's features; the model dir has no job.json "
            "and spec.data is not set"
        )
    declared = {f.name: f for f in [*data.features, data.label]}
    if id_key is None:
        label = data.features[0]
    else:
        label = declared.get(id_key) or FeatureSpec(name=id_key, shape=[], dtype="string")
    return data.model_copy(update={"train": uri, "validation": None, "label": label})


def _predictions(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, scores): the class for multi-output rows, else the value."""
    scores = outputs.reshape(len(outputs), -1).astype(np.float32)
    if scores.shape[1] > 1:
        return np.argmax(scores, axis=1).astype(np.int64), scores
    return scores[:, 0], scores


def table(ids: np.ndarray | None, id_key: str | None, outputs: np.ndarray) -> Any:
    """The output table: id column (if any), prediction, scores; one row per input."""
    import pyarrow as pa

    prediction, scores = _predictions(outputs)
    columns: dict[str, Any] = {}
    if id_key is not None and ids is not None:
        values = ids.reshape(len(ids), -1)
        values = values[:, 0] if values.shape[1] == 1 else list(values)
        if values.dtype == object:
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        columns[id_key] = values
    columns["prediction"] = prediction
    columns["scores"] = pa.FixedSizeListArray.from_arrays(pa.array(scores.ravel()), scores.shape[1])
    return pa.table(columns)


def _load(local: Path) -> Any:
    """A callable batch -> outputs, for a `.keras` archive or an inference SavedModel."""
    import importlib

    archive = local / export.MODEL_FILE
    if archive.exists():
        library = keras_library(archive)
        keras = importlib.import_module(library)
        log.info("loading %s with %s", archive, library)
        return keras.models.load_model(str(archive), compile=False)
    saved = local / SAVED_MODEL
    if saved.exists():
        import tensorflow as tf

        return tf.saved_model.load(str(saved))
    raise ConfigError(
        f"spec.predict.model: no {export.MODEL_FILE} or {SAVED_MODEL}/ in the model dir"
    )


def _run_model(model: Any, features: Any) -> np.ndarray:
    if hasattr(model, "predict"):
        return np.asarray(model.predict(features, verbose=0))
    outputs = [np.asarray(model.serve(batch)) for batch in features]
    return np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)


def run(cfg: TrainerConfig) -> int:
    """Predict over spec.predict.input and write spec.predict.output; return the row count.

    Raises:
        ConfigError: the model or the input's features cannot be found.
        DataError: the input cannot be read.
    """
    import tensorflow as tf

    spec = cfg.job.spec
    predict = spec.predict
    if predict is None:
        raise ConfigError("spec.predict: task predict needs a predict block")
    with tempfile.TemporaryDirectory(prefix="kubetrain-predict-") as tmp:
        local = Path(tmp) / "model"
        _download(predict.model, local)
        data = input_spec(spec.data, trained_job(local), predict.id_key, predict.input)
        fmt = pipeline.FORMATS[data.format]
        files = data_files.list_files(predict.input)
        records = fmt.parse(fmt.dataset(files, data).batch(predict.batch_size), data)
        if spec.tpu is not None:
            from kubetrain_trainer import tpu

            strategy = tpu.create_strategy(spec.tpu)
        else:
            strategy = tf.distribute.get_strategy()
        with strategy.scope():
            model = _load(local)
        features = records.map(lambda x, _: x).prefetch(tf.data.AUTOTUNE)
        outputs = _run_model(model, features)
    ids = None
    if predict.id_key is not None:
        ids = np.concatenate([np.asarray(y) for _, y in records.as_numpy_iterator()])
    out = table(ids, predict.id_key, outputs)
    parent = fs.split(predict.output)[0]
    if parent and not fs.is_remote(predict.output):
        os.makedirs(parent, exist_ok=True)
    parquet.write(predict.output, out)
    log.info(
        "wrote %d predictions of %d input files to %s", out.num_rows, len(files), predict.output
    )
    print(json.dumps({"event": "predicted", "rows": out.num_rows}), flush=True)
    return out.num_rows
