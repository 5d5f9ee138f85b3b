"""Built-in models build with Keras 3 and with tf_keras (parameter_server)."""

from __future__ import annotations

import importlib

import pytest

from kubetrain_operator.api import DataSpec, ModelSpec, TrainingSpec
from kubetrain_trainer import models
from kubetrain_trainer.config import ConfigError

DATA = DataSpec.model_validate(
    {
        "train": "x",
        "features": [{"name": "pixels", "shape": [32, 32, 3]}],
        "label": {"name": "label", "dtype": "int64"},
    }
)


def keras_model_entrypoint(units: int = 4):
    import keras

    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def any_keras_entrypoint(keras, units: int = 4):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


@pytest.mark.trainer
@pytest.mark.parametrize("library", ["keras", "tf_keras"])
@pytest.mark.parametrize("builtin", ["mlp", "cnn", "resnet50"])
def test_builtins_build_and_compile(library: str, builtin: str) -> None:
    keras = importlib.import_module(library)
    model = models.build(ModelSpec(builtin=builtin, num_classes=7), DATA, keras=keras)
    assert isinstance(model, keras.Model)
    assert model.output_shape == (None, 7)
    models.compile_model(model, TrainingSpec(jit_compile=False), keras=keras)
    assert model.optimizer is not None


@pytest.mark.trainer
def test_entrypoints_get_the_keras_module_they_ask_for() -> None:
    import tf_keras

    spec = ModelSpec(entrypoint=f"{__name__}:any_keras_entrypoint", kwargs={"units": 2})
    assert isinstance(models.build(spec, None, keras=tf_keras), tf_keras.Model)
    keras3_only = ModelSpec(entrypoint=f"{__name__}:keras_model_entrypoint")
    with pytest.raises(ConfigError, match=r"tf_keras.*accept a `keras` argument"):
        models.build(keras3_only, None, keras=tf_keras)
