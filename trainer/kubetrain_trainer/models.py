"""Keras models: built-ins and user entry points `package.module:function`.

Called inside `strategy.scope()`, so variables land on the strategy's devices.
Every builder takes the Keras module to build with: Keras 3 (`keras`) by
default, `tf_keras` under parameter_server, whose `fit` Keras 3 lacks.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from kubetrain_operator.api import DataSpec, ModelSpec, TrainingSpec
from kubetrain_trainer.config import ConfigError


def _input_shape(data: DataSpec | None) -> tuple[int, ...]:
    if data is None or not data.features:
        raise ConfigError("spec.data.features: built-in models need the input shape")
    return tuple(data.features[0].shape)


def _keras3() -> ModuleType:
    import keras

    return keras


def mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: int = 128,
    keras: ModuleType | None = None,
    **_: Any,
):
    """A small fully connected classifier."""
    keras = keras or _keras3()

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden // 2, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp",
    )


def cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: int = 32,
    keras: ModuleType | None = None,
    **_: Any,
):
    """A small convnet for images like MNIST or 8x8 digits."""
    keras = keras or _keras3()

    shape = input_shape if len(input_shape) == 3 else (*input_shape, 1)
    side = min(shape[0], shape[1])
    pool = side >= 8
    layers = [keras.Input(shape=shape)]
    if len(input_shape) != 3:
        layers.append(keras.layers.Reshape(shape))
    layers += [
        keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D() if pool else keras.layers.Identity(),
        keras.layers.Conv2D(filters * 2, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D() if side >= 16 else keras.layers.Identity(),
        keras.layers.Flatten(),
        keras.layers.Dense(max(64, num_classes * 4), activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]
    return keras.Sequential(layers, name="cnn")


def resnet50(
    input_shape: tuple[int, ...], num_classes: int, keras: ModuleType | None = None, **_: Any
):
    """keras.applications ResNet50 from scratch (weights are never downloaded)."""
    keras = keras or _keras3()

    return keras.applications.ResNet50(weights=None, input_shape=input_shape, classes=num_classes)


BUILTINS = {"mlp": mlp, "cnn": cnn, "resnet50": resnet50}


def load_entrypoint(entrypoint: str):
    """Import `package.module:function`.

    Raises:
        ConfigError: the module or function cannot be found.
    """
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"spec.model.entrypoint: cannot import {module_name!r}: {err}") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"spec.model.entrypoint: {module_name!r} has no function {attr!r}")
    return fn


class EntrypointError(Exception):
    """The user's model function raised: user code, not the job's configuration.

    Its message names the entry point, so the job's Failed condition says
    whose code broke, not only the exception's last words.
    """


def build(model: ModelSpec, data: DataSpec | None, keras: ModuleType | None = None):
    """Build the model (uncompiled, unless the user's function compiled it).

    Args:
        model: the model spec.
        data: the data spec (built-ins take their input shape from it).
        keras: the Keras module to build with; Keras 3 when None. User functions
            that take a `keras` argument are given it.

    Raises:
        ConfigError: the entry point is missing or returns something else.
        EntrypointError: the entry point raised.
    """
    keras = keras or _keras3()
    kwargs = dict(model.kwargs)
    if model.builtin is not None:
        return BUILTINS[model.builtin](_input_shape(data), model.num_classes, keras=keras, **kwargs)
    fn = load_entrypoint(model.entrypoint or "")
    if "keras" in inspect.signature(fn).parameters:
        kwargs["keras"] = keras
    try:
        built = fn(**kwargs)
    except Exception as err:
        what = f"{type(err).__name__}: {err}".strip().replace("\n", " ")
        raise EntrypointError(f"spec.model.entrypoint {model.entrypoint} raised {what}") from err
    if not isinstance(built, keras.Model):
        expected = f"a {keras.__name__}.Model"
        if keras.__name__ == "tf_keras":
            expected += " (parameter_server trains with tf_keras: accept a `keras` argument)"
        raise ConfigError(
            f"spec.model.entrypoint: {model.entrypoint} returned {type(built).__name__}, "
            f"expected {expected}"
        )
    return built


def compile_model(model: Any, training: TrainingSpec, keras: ModuleType | None = None) -> None:
    """Compile with the spec's optimizer, loss and metrics unless already compiled.

    `jit_compile` is always passed explicitly: Keras 3 otherwise defaults to
    "auto" (XLA whenever the model allows it), so the spec decides, not the library.
    """
    keras = keras or _keras3()
    compiled = getattr(model, "compiled", False) or getattr(model, "_is_compiled", False)
    if getattr(model, "optimizer", None) is not None and compiled:
        return
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    model.compile(
        optimizer=optimizers[training.optimizer](learning_rate=training.learning_rate),
        loss=training.loss,
        metrics=list(training.metrics),
        jit_compile=training.jit_compile,
    )
