"""MirroredStrategy for real, on 2 logical CPU devices (no GPU needed).

The CPU is split into 2 logical devices in a fresh process, before anything
touches TensorFlow, and the trainer's own pieces (models.build/compile_model in
the strategy's scope, data.pipeline.make_input, fit, evaluate, predict) run
under MirroredStrategy(["/cpu:0", "/cpu:1"]) on the digits fixture.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from pathlib import Path

import tensorflow as tf

# Must happen before TensorFlow initialises its devices.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras
import numpy as np
import yaml

from kubetrain_operator.api import TrainingJob
from kubetrain_trainer import models
from kubetrain_trainer.data import pipeline

root, digits = Path(sys.argv[1]), Path(sys.argv[2])
doc = yaml.safe_load((root / "examples" / "digits-local.yaml").read_text())
doc["spec"]["replicas"] = {"worker": {"replicas": 1}}
doc["spec"]["strategy"] = "mirrored"
doc["spec"]["training"]["epochs"] = 6  # >= 0.95 already; keeps the test near a minute
doc["spec"]["data"]["train"] = str(digits / "train")
doc["spec"]["data"]["validation"] = str(digits / "validation")
spec = TrainingJob.model_validate(doc).spec

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.utils.set_random_seed(spec.training.seed)
with strategy.scope():
    model = models.build(spec.model, spec.data)
    models.compile_model(model, spec.training)
train = pipeline.make_input(strategy, spec.data, spec.training, spec.data.train, True, 1)
val = pipeline.make_input(strategy, spec.data, spec.training, spec.data.validation, False, 1)
history = model.fit(
    train.dataset,
    epochs=spec.training.epochs,
    steps_per_epoch=train.steps,
    validation_data=val.dataset,
    validation_steps=val.steps,
    verbose=2,
)
evaluated = model.evaluate(val.dataset, steps=val.steps, return_dict=True, verbose=0)
x = np.random.default_rng(0).random((10, 8, 8, 1), dtype=np.float32)
predictions = model.predict(x, verbose=0)
print("RESULT " + json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "devices": list(strategy.extended.worker_devices),
    "global_batch": train.global_batch_size,
    "val_accuracy": float(history.history["val_accuracy"][-1]),
    "evaluate_accuracy": float(evaluated["accuracy"]),
    "predict_shape": list(predictions.shape),
    # Keras 3 wraps the tf.distribute variable: .value is the MirroredVariable.
    "variable_devices": sorted({v.device for v in model.trainable_variables[0].value.values}),
}))
"""


@pytest.mark.trainer
@pytest.mark.timeout(300)
def test_mirrored_on_two_logical_cpus_trains_digits(digits_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT), str(digits_dir)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["replicas"] == 2, out
    assert len(out["devices"]) == 2 and all("CPU" in d for d in out["devices"]), out
    # One mirrored copy of each variable per logical device.
    assert len(out["variable_devices"]) == 2, out
    assert out["global_batch"] == 2 * 32, out  # batchSizePerReplica x replicas
    assert out["val_accuracy"] >= 0.9, out
    assert out["evaluate_accuracy"] >= 0.9, out
    assert out["predict_shape"] == [10, 10], out
