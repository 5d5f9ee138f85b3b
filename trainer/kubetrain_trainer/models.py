"""Keras models: built-ins and user entry points `package.module:function`.

Called inside `strategy.scope()`, so variables land on the strategy's devices.
"""

from __future__ import annotations

import importlib
from typing import Any

from kubetrain_operator.api import DataSpec, ModelSpec, TrainingSpec
from kubetrain_trainer.config import ConfigError


def _input_shape(data: DataSpec | None) -> tuple[int, ...]:
    if data is None or not data.features:
        raise ConfigError("spec.data.features: built-in models need the input shape")
    return tuple(data.features[0].shape)


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 128, **_: Any):
    """A small fully connected classifier."""
    import keras

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


def cnn(input_shape: tuple[int, ...], num_classes: int, filters: int = 32, **_: Any):
    """A small convnet for images like MNIST or 8x8 digits."""
    import keras

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


def resnet50(input_shape: tuple[int, ...], num_classes: int, **_: Any):
    """keras.applications ResNet50 from scratch (weights are never downloaded)."""
    import keras

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


def build(model: ModelSpec, data: DataSpec | None):
    """Build the model (uncompiled, unless the user's function compiled it).

    Raises:
        ConfigError: the entry point is missing or returns something else.
    """
    import keras

    if model.builtin is not None:
        return BUILTINS[model.builtin](_input_shape(data), model.num_classes, **model.kwargs)
    built = load_entrypoint(model.entrypoint or "")(**model.kwargs)
    if not isinstance(built, keras.Model):
        raise ConfigError(
            f"spec.model.entrypoint: {model.entrypoint} returned {type(built).__name__}, "
            "expected a keras.Model"
        )
    return built


def compile_model(model: Any, training: TrainingSpec) -> None:
    """Compile with the spec's optimizer, loss and metrics unless already compiled."""
    import keras

    if getattr(model, "optimizer", None) is not None and model.compiled:
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
