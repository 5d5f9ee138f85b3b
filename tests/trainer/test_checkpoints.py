"""Per-worker epoch checkpoints with real Keras models: save, prune, agree, restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kubetrain_trainer import checkpoints


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _weights(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


@pytest.mark.trainer
def test_workers_that_disagree_resume_at_the_older_epoch(tmp_path: Path) -> None:
    root = str(tmp_path / "backup")
    states = {epoch: _model(epoch) for epoch in (1, 2, 3)}
    # worker-0 saved epochs 1..3; worker-1 was killed before saving epoch 3.
    for epoch, model in states.items():
        checkpoints.save(model, f"{root}/worker-0", epoch, keep=2)
        if epoch < 3:
            checkpoints.save(model, f"{root}/worker-1", epoch, keep=2)
    assert checkpoints.saved_epochs(f"{root}/worker-0") == [2, 3]
    assert not (tmp_path / "backup" / "worker-0" / checkpoints.weights_name(1)).exists()
    # weights without their marker (a save cut short) do not count
    (tmp_path / "backup" / "worker-1" / checkpoints.weights_name(3)).write_bytes(b"partial")

    for me in ("worker-0", "worker-1"):
        model = _model(99)
        epoch = checkpoints.resume(model, root, me, ["worker-0", "worker-1"])
        assert epoch == 2
        np.testing.assert_array_equal(_weights(model), _weights(states[2]))
        assert len(model.optimizer.variables) == len(states[2].optimizer.variables)


@pytest.mark.trainer
def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    model = _model(5)
    before = _weights(model)
    assert checkpoints.resume(model, str(tmp_path), "worker-0", ["worker-0", "worker-1"]) == 0
    np.testing.assert_array_equal(_weights(model), before)
