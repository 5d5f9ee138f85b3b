"""Weights snapshots: the same file as `save_weights`, taken now, written later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetrain_trainer import snapshots


def _model(seed: int) -> Any:
    """Trainable and non-trainable variables, and a built optimizer with slots."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(seed).random((64, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.arange(64) % 10, batch_size=16, epochs=1, verbose=0)
    return model


def _tree(path: Path) -> list[tuple[str, str, dict, Any]]:
    import h5py

    entries: list[tuple[str, str, dict, Any]] = []
    with h5py.File(path, "r") as h5:

        def visit(name: str, obj: Any) -> None:
            value = obj[()] if isinstance(obj, h5py.Dataset) else None
            entries.append((name, type(obj).__name__, dict(obj.attrs), value))

        h5.visititems(visit)
    return entries


def _assert_same_file(a: Path, b: Path) -> None:
    tree_a, tree_b = _tree(a), _tree(b)
    assert [e[:3] for e in tree_a] == [e[:3] for e in tree_b]
    for (name, _, _, va), (_, _, _, vb) in zip(tree_a, tree_b, strict=True):
        if va is not None:
            np.testing.assert_array_equal(va, vb, err_msg=name)


def _variables(model: Any) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in [*model.variables, *model.optimizer.variables]]


def _write_and_compare(model: Any, tmp_path: Path, kind: type) -> Path:
    """Take and write a snapshot of `model`, check it against `save_weights`' file."""
    snapshot = snapshots.take(model)
    assert isinstance(snapshot, kind)
    path = tmp_path / "snapshot.weights.h5"
    snapshot.write(str(path))
    model.save_weights(str(tmp_path / "keras.weights.h5"))
    _assert_same_file(path, tmp_path / "keras.weights.h5")
    return path


@pytest.mark.trainer
def test_snapshot_writes_what_save_weights_writes(tmp_path: Path) -> None:
    model = _model(1)
    path = _write_and_compare(model, tmp_path, snapshots.Recorded)
    other = _model(2)
    other.load_weights(str(path))
    for mine, theirs in zip(_variables(model), _variables(other), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.trainer
def test_snapshot_keeps_the_values_of_when_it_was_taken(tmp_path: Path) -> None:
    model = _model(3)
    before = _variables(model)
    snapshot = snapshots.take(model)
    x = np.random.default_rng(4).random((64, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.arange(64) % 10, batch_size=16, epochs=1, verbose=0)
    snapshot.write(str(tmp_path / "w.weights.h5"))

    restored = _model(5)
    restored.load_weights(str(tmp_path / "w.weights.h5"))
    for then, now in zip(before, _variables(restored), strict=True):
        np.testing.assert_array_equal(then, now)


@pytest.mark.trainer
def test_keras_skipset_cache_is_filled_under_the_key_keras_reads(tmp_path: Path) -> None:
    from keras.src.backend.common import global_state

    snapshots.take(_model(6))
    for obj_type in ("Layer", "Sequential", "Optimizer"):
        assert global_state.get_global_attribute(f"saving_attr_skiplist_{obj_type}") is not None


@pytest.mark.trainer
def test_unverified_keras_falls_back_to_save_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "VERIFIED_KERAS_VERSIONS", frozenset())
    _write_and_compare(_model(7), tmp_path, snapshots.Saved)
