"""One MultiWorkerMirroredStrategy worker for tests/trainer/test_keras_compat.py.

Run as N processes with TF_CONFIG set. Trains a small MLP on sklearn digits with
``model.fit``, then ``evaluate`` and ``predict``, and writes a JSON result file.

    python mwms_worker.py --out result.json --mode patched|unpatched|legacy
        [--epochs 3] [--backup-dir DIR] [--batch-sleep 0.0]

``patched``: Keras 3 + kubetrain_trainer.keras_compat.apply(); ``unpatched``:
Keras 3 as shipped; ``legacy``: tf_keras (TF_USE_LEGACY_KERAS=1). On an exception
the JSON holds {"error": ...} and the exit code is 3. Progress lines
``EPOCH_BEGIN e`` / ``BATCH e b`` / ``EPOCH_END e`` go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

GLOBAL_BATCH = 64


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["patched", "unpatched", "legacy"], required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--backup-dir", default=None, help="BackupAndRestore root (per-worker subdir)")
    p.add_argument("--batch-sleep", type=float, default=0.0, help="slow down training (s/batch)")
    args = p.parse_args()

    if args.mode == "legacy":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    result: dict = {"mode": args.mode}
    try:
        result.update(run(args))
        rc = 0
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"[:4000]
        traceback.print_exc()
        rc = 3
    with open(args.out, "w") as f:
        json.dump(result, f)
    return rc


def run(args) -> dict:
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    if args.mode == "legacy":
        import tf_keras as keras
    else:
        import keras
    applied = None
    if args.mode == "patched":
        from kubetrain_trainer import keras_compat

        applied = keras_compat.apply()

    task = json.loads(os.environ["TF_CONFIG"])["task"]
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    y = y.astype("int64")
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(GLOBAL_BATCH, drop_remainder=True)
        .with_options(opts)
    )
    # Last batch is partial (1797 = 28 * 64 + 5): exercises uneven per-worker batches.
    full = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(opts)
    n_pred = 100  # not a multiple of the global batch
    pred_ds = tf.data.Dataset.from_tensor_slices(x[:n_pred]).batch(GLOBAL_BATCH).with_options(opts)

    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    epoch_times: dict[int, float] = {}
    epoch_cpu: dict[int, float] = {}

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.t0, self.c0 = epoch, time.perf_counter(), time.process_time()
            print(f"EPOCH_BEGIN {epoch}", flush=True)

        def on_train_batch_end(self, batch, logs=None):
            if args.batch_sleep:
                time.sleep(args.batch_sleep)
                print(f"BATCH {self.epoch} {batch}", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            epoch_times[epoch] = time.perf_counter() - self.t0
            epoch_cpu[epoch] = time.process_time() - self.c0
            print(f"EPOCH_END {epoch}", flush=True)

    callbacks = [Progress()]
    if args.backup_dir:
        callbacks.insert(
            0,
            keras.callbacks.BackupAndRestore(
                backup_dir=os.path.join(args.backup_dir, f"worker-{task['index']}"),
                delete_checkpoint=False,
            ),
        )

    hist = model.fit(train, epochs=args.epochs, verbose=0, callbacks=callbacks)
    ev = model.evaluate(full, verbose=0, return_dict=True)
    pred = np.asarray(model.predict(pred_ds, verbose=0))
    local_logits = np.asarray(model(x, training=False))
    return {
        "keras_version": keras.__version__,
        "applied": applied,
        "task_index": task["index"],
        "num_replicas": strategy.num_replicas_in_sync,
        "steps_per_epoch": len(x) // GLOBAL_BATCH,
        "epochs_run": [int(e) for e in hist.epoch],
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
        "epoch_times": [epoch_times[e] for e in sorted(epoch_times)],
        "epoch_cpu_times": [epoch_cpu[e] for e in sorted(epoch_cpu)],
        "eval": {k: float(v) for k, v in ev.items()},
        "pred_shape": list(pred.shape),
        "pred_max_abs_diff": float(np.abs(pred - local_logits[:n_pred]).max()),
        "local_accuracy": float((local_logits.argmax(1) == y).mean()),
    }


if __name__ == "__main__":
    sys.exit(main())
