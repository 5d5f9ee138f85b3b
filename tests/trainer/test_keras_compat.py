"""Keras 3 under MultiWorkerMirroredStrategy with 2 real worker processes.

Guards kubetrain_trainer.keras_compat (keras-team/keras#20585): the patched run must
train/evaluate/predict correctly with identical results on both workers, and the
unpatched run must still fail (if it stops failing, upstream fixed the bug and the
patch can go). One process never takes the multi-worker code paths, hence 2.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mwms_worker.py"
TRAINER_DIR = HERE.parent.parent / "trainer"

pytestmark = [
    pytest.mark.trainer,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None,
        reason="needs tensorflow + keras",
    ),
]

RUN_TIMEOUT_S = 240


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(tmp: Path, tag: str, mode: str, *extra: str, n: int = 2):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(TRAINER_DIR), env.get("PYTHONPATH", "")]),
    )
    procs = []
    for i in range(n):
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        log = open(tmp / f"{tag}_{i}.log", "w")  # noqa: SIM115 - closed with the process
        cmd = [sys.executable, str(WORKER), "--out", str(tmp / f"{tag}_{i}.json"), "--mode", mode]
        procs.append(
            subprocess.Popen([*cmd, *extra], env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()
    return procs


def _wait(procs, timeout=RUN_TIMEOUT_S) -> list[int]:
    deadline = time.monotonic() + timeout
    rcs = []
    try:
        for p in procs:
            rcs.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return rcs


def _results(tmp: Path, tag: str, n: int = 2) -> list[dict]:
    out = []
    for i in range(n):
        f = tmp / f"{tag}_{i}.json"
        assert f.exists(), f"worker {i} wrote no result; log:\n{_tail(tmp / f'{tag}_{i}.log')}"
        out.append(json.loads(f.read_text()))
    return out


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text()[-n:] if path.exists() else "<no log>"


def _run(tmp: Path, tag: str, mode: str, *extra: str):
    rcs = _wait(_start(tmp, tag, mode, *extra))
    return rcs, _results(tmp, tag)


def _assert_trained(tmp: Path, tag: str, rcs: list[int], res: list[dict], epochs: int):
    logs = "\n".join(_tail(tmp / f"{tag}_{i}.log") for i in range(2))
    assert rcs == [0, 0], f"rcs={rcs} errors={[r.get('error') for r in res]}\n{logs}"
    a, b = res
    assert a["num_replicas"] == 2
    assert a["epochs_run"] == list(range(epochs))
    loss = a["history"]["loss"]
    assert all(x > y for x, y in itertools.pairwise(loss)), loss
    # Both workers report the same (all-reduced) logs and end with the same weights.
    assert a["history"] == b["history"]
    assert a["eval"] == b["eval"]
    assert a["eval"]["accuracy"] > 0.9, a["eval"]
    # evaluate() over all 1797 samples (uneven last batch) == accuracy of local weights.
    assert abs(a["eval"]["accuracy"] - a["local_accuracy"]) < 1e-3
    assert a["local_accuracy"] == b["local_accuracy"]
    # predict(): all 100 rows, in input order, matching a local forward pass.
    assert a["pred_shape"] == b["pred_shape"] == [100, 10]
    assert a["pred_max_abs_diff"] < 1e-4 and b["pred_max_abs_diff"] < 1e-4


# --- apply(): version gate, idempotency (in-process, no training) ---------------------


@pytest.fixture
def restore_keras(monkeypatch):
    """Let pytest undo the patch after the test."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    monkeypatch.setattr(
        tf_trainer.TensorFlowTrainer,
        "_maybe_symbolic_build",
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build,
    )
    monkeypatch.setattr(tf_trainer, "reduce_per_replica", tf_trainer.reduce_per_replica)
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    return tf_trainer


@pytest.mark.timeout(120)
def test_apply_version_gate_and_idempotent(restore_keras, monkeypatch):
    sys.path.insert(0, str(TRAINER_DIR))
    try:
        from kubetrain_trainer import keras_compat
    finally:
        sys.path.remove(str(TRAINER_DIR))
    import keras

    tf_trainer = restore_keras
    orig = tf_trainer.reduce_per_replica

    with pytest.raises(keras_compat.UnverifiedKerasVersionError, match="20585"):
        keras_compat.apply("3.99.0")
    with pytest.warns(RuntimeWarning, match="UNPATCHED"):
        assert keras_compat.apply("3.99.0", allow_unverified=True) is False
    assert keras_compat.apply("2.15.0") is False
    with pytest.raises(keras_compat.UnverifiedKerasVersionError):
        keras_compat.apply("4.0.0")
    assert tf_trainer.reduce_per_replica is orig and not keras_compat.is_applied()

    if keras.__version__ not in keras_compat.VERIFIED_KERAS_VERSIONS:
        pytest.fail(
            f"installed Keras {keras.__version__} is not in VERIFIED_KERAS_VERSIONS: "
            "re-verify keras_compat (run this module) before bumping Keras"
        )
    # TF_USE_LEGACY_KERAS only redirects tf.keras; `import keras` is still Keras 3.
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    assert keras_compat.apply() is True
    patched = (tf_trainer.reduce_per_replica, tf_trainer.TensorFlowTrainer._maybe_symbolic_build)
    assert keras_compat.apply() is True  # idempotent: no double wrapping
    assert patched == (
        tf_trainer.reduce_per_replica,
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build,
    )
    assert keras_compat.is_applied()


# --- 2 real worker processes -----------------------------------------------------------


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_patched_keras3_two_workers_fit_evaluate_predict(tmp_path):
    rcs, res = _run(tmp_path, "patched", "patched", "--epochs", "3")
    _assert_trained(tmp_path, "patched", rcs, res, epochs=3)
    assert res[0]["applied"] is True


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_unpatched_keras3_two_workers_still_fails(tmp_path):
    """Proves the patched test guards the fix. If this starts failing, Keras fixed
    keras-team/keras#20585 upstream: drop keras_compat for that version."""
    rcs, res = _run(tmp_path, "unpatched", "unpatched", "--epochs", "2")
    assert rcs == [3, 3], f"unpatched Keras 3 ran under 2-worker MWMS (fixed upstream?): {res}"
    for r in res:
        assert "PerReplica" in r["error"] and "unsupported type" in r["error"], r["error"]


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_legacy_tf_keras_two_workers(tmp_path):
    """The fallback (TF_USE_LEGACY_KERAS=1) works without any patch."""
    rcs, res = _run(tmp_path, "legacy", "legacy", "--epochs", "3")
    _assert_trained(tmp_path, "legacy", rcs, res, epochs=3)


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 60)
@pytest.mark.parametrize("victim", [0, 1], ids=["kill-chief", "kill-worker"])
def test_backup_and_restore_resumes_after_sigkill(tmp_path, victim):
    """SIGKILL one worker in epoch 1 (the 2nd of 4): the survivor must exit, not hang;
    after restarting both, fit resumes at epoch 1 from per-worker backups."""
    backup = tmp_path / "backup"
    extra = ("--epochs", "4", "--backup-dir", str(backup), "--batch-sleep", "0.05")
    procs = _start(tmp_path, "run1", "patched", *extra)
    log = tmp_path / f"run1_{victim}.log"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while "BATCH 1 10\n" not in log.read_text():
            assert all(p.poll() is None for p in procs), _tail(log)
            assert time.monotonic() < deadline, "no progress to epoch 1"
            time.sleep(0.05)
        os.kill(procs[victim].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        survivor = procs[1 - victim]
        try:
            rc = survivor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("surviving worker hung > 60s after its peer was SIGKILLed")
        assert rc != 0
        print(f"survivor exited rc={rc} {time.monotonic() - killed_at:.1f}s after SIGKILL")
    finally:
        _wait(procs, timeout=1)

    for i in range(2):
        meta = json.loads((backup / f"worker-{i}" / "training_metadata.json").read_text())
        assert meta["epoch"] == 1, meta  # epoch 0 finished and backed up on both workers

    rcs, res = _run(tmp_path, "run2", "patched", *extra)
    assert rcs == [0, 0], [r.get("error") for r in res]
    for r in res:
        assert r["epochs_run"] == [1, 2, 3], r["epochs_run"]  # resumed, not from 0
    assert res[0]["history"] == res[1]["history"]
    assert res[0]["eval"]["accuracy"] > 0.9
