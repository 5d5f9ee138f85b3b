"""Trainer overhead benchmark (issue 8, part 3): kubetrain_trainer vs plain Keras.

Writes synthetic digits-shaped TFRecord shards (pixels float32 [8, 8, 1],
int64 label; cached outside the clone), then, for the built-in cnn and mlp:

* trainer: `python -m kubetrain_trainer`, one process, with the environment a
  pod gets (plan.trainer_env: KUBETRAIN_JOB + a one-worker TF_CONFIG);
* plain: this file's `plain_keras` (no kubetrain import): the same layers,
  optimizer, loss, metrics, batch, epochs and steps, reading the same files
  with `TFRecordDataset -> shuffle -> repeat -> batch -> parse_example`.

Both print Keras' verbose=2 line at each epoch end; this script stamps each
line as it arrives, and time per step = (last epoch's line - first epoch's
line) / steps in between: steady state, start-up and the first epoch (tracing)
excluded, every per-epoch cost of the trainer (its checkpoint, progress)
included. Variants rotate order each round; ratio = trainer / plain time per
step, paired per round (target <= 1.05x).

Then scaling: `kubetrain run` of the cnn job with 2 workers
(MultiWorkerMirroredStrategy over loopback) vs 1 worker, examples/s (global
batch / time per step), recorded as it is on this machine.

    .venv/bin/python benchmarks/trainer_overhead.py
    .venv/bin/python benchmarks/trainer_overhead.py --rounds 1 --no-scaling --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common  # benchmarks/: sys.path[0] when run as `python benchmarks/<name>.py`

PYTHON = sys.executable
KUBETRAIN = str(Path(PYTHON).with_name("kubetrain"))
# Keras' verbose=2 epoch-end line, e.g. "750/750 - 3s - 4ms/step - accuracy: ..."
EPOCH_LINE = re.compile(r"(?:^|\] )\s*(\d+)/(\d+) - \d+s - ")
RUN_TIMEOUT = 300


# -- the baseline: plain Keras, nothing from kubetrain ------------------------


def plain_dataset(args: argparse.Namespace) -> Any:
    """The digits records as a hand-written tf.data pipeline (shuffled, repeated, batched)."""
    import tensorflow as tf

    files = sorted(str(p) for p in Path(args.data).iterdir())
    spec = {
        "pixels": tf.io.FixedLenFeature([8, 8, 1], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(raw: Any) -> Any:
        parsed = tf.io.parse_example(raw, spec)
        return parsed["pixels"], parsed["label"]

    return (
        tf.data.TFRecordDataset(files)
        .shuffle(10_000, seed=args.seed)
        .repeat()
        .batch(args.batch, drop_remainder=True)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def plain_keras(args: argparse.Namespace) -> None:
    import keras

    keras.utils.set_random_seed(args.seed)
    dataset = plain_dataset(args)
    if args.plain_keras == "cnn":
        layers = [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    else:
        layers = [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=args.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    print(json.dumps({"params": model.count_params()}), flush=True)
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=args.steps, verbose=2)


# -- ablation: which part of the trainer costs what (in one process) ------------

ABLATION = {
    "plain": "plain Keras: no strategy, native tf.data, no callbacks (baseline)",
    "od": "+ OneDeviceStrategy('/cpu:0') (the trainer's one CPU worker before 2026-11-26)",
    "od+mi": "+ OneDeviceStrategy + the trainer's `make_input` dataset",
    "prog": "+ the trainer's progress callback",
    "prog+async": "+ the progress callback marked `async_safe = True` (proposed fix)",
    "backup": "+ the trainer's per-epoch backup callback",
    "od+mi+prog+backup": "all of the above as `train.run` wired them before 2026-11-26",
    "od+mi+prog+async+backup": "the same with the async progress callback",
    "mi+prog+async+backup": "the trainer now: default strategy on CPU, `make_input`, callbacks",
}


def ablate(args: argparse.Namespace) -> None:
    """Fit the built-in model under each configuration; print one JSON line per fit."""
    import keras
    import tensorflow as tf

    from kubetrain_operator.api import TrainingJob
    from kubetrain_trainer import callbacks, models, progress
    from kubetrain_trainer.data import pipeline

    job = TrainingJob.model_validate(job_doc("ablate", args.ablate, Path(args.data), args, 1))
    spec = job.spec
    steps, epochs = args.steps, 3

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: list[tuple[float, float]] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.marks.append((time.perf_counter(), time.process_time()))

    def fit(config: str) -> dict[str, float]:
        parts = set(config.split("+"))
        keras.utils.set_random_seed(args.seed)
        strategy = (
            tf.distribute.OneDeviceStrategy("/cpu:0")
            if "od" in parts
            else tf.distribute.get_strategy()
        )
        with strategy.scope():
            model = models.build(spec.model, spec.data, keras=keras)
            models.compile_model(model, spec.training, keras=keras)
        if "mi" in parts:
            dataset = pipeline.make_input(
                strategy, spec.data, spec.training, spec.data.train, True, 1
            ).dataset
        else:
            dataset = plain_dataset(args)
        cbs: list[Any] = []
        if "backup" in parts:
            cbs.append(callbacks.backup(keras, tempfile.mkdtemp(prefix="kubetrain-ablate-")))
        if "prog" in parts:
            cb = progress.callback(progress.ProgressState(epochs, steps, args.batch), keras)
            if "async" in parts:
                cb.async_safe = True
            cbs.append(cb)
        clock = Clock()
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps, callbacks=[*cbs, clock], verbose=0)
        (w0, c0), (w1, c1) = clock.marks[0], clock.marks[-1]
        n = steps * (len(clock.marks) - 1)
        return {"step_s": (w1 - w0) / n, "cpu_step_s": (c1 - c0) / n}

    configs = list(ABLATION)
    for r in range(args.rounds):
        for config in common.rotated(configs, r):
            result = fit(config)
            print(json.dumps({"ablation": config, "round": r, **result}), flush=True)


def run_ablation(data: Path, args: argparse.Namespace, work: Path) -> dict[str, list[dict]]:
    """`ablate` in a fresh process per model; {model+config: [results]}."""
    out: dict[str, list[dict]] = {}
    for model in args.models:
        cmd = [
            PYTHON, __file__, "--ablate", model, "--data", str(data), "--rounds",
            str(args.rounds), "--batch", str(args.batch), "--steps", str(args.ablation_steps),
            "--lr", str(args.lr), "--seed", str(args.seed),
        ]  # fmt: skip
        log = work / f"ablation-{model}.log"
        with log.open("w") as fh:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=RUN_TIMEOUT * 2,
                cwd=common.ROOT, check=False,
            )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"ablation of {model} exited {proc.returncode}; see {log}")
        for line in proc.stdout.splitlines():
            if line.startswith('{"ablation"'):
                row = json.loads(line)
                out.setdefault(f"{model}:{row['ablation']}", []).append(row)
                print(line, flush=True)
    return out


# -- data -----------------------------------------------------------------------


def make_data(root: Path, records: int, shards: int) -> Path:
    """Digits-shaped random records (reused when already complete)."""
    import numpy as np

    from kubetrain_trainer.data import tfrecord

    out = root / f"bench-digits-{records}x{shards}"
    if (out / "complete").exists():
        return out / "train"
    (out / "train").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_shard = records // shards
    for i in range(shards):
        pixels = rng.random((per_shard, 8, 8, 1), dtype=np.float32)
        labels = rng.integers(0, 10, per_shard, dtype=np.int64)
        path = out / "train" / f"part-{i:05d}.tfrecord"
        tfrecord.write(str(path), {"pixels": pixels, "label": labels}, per_shard)
    (out / "complete").write_text(str(per_shard * shards))
    return out / "train"


def job_doc(name: str, model: str, data: Path, args: argparse.Namespace, workers: int) -> dict:
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "uid": f"{name}-{time.monotonic_ns()}"},
        "spec": {
            "replicas": {"worker": {"replicas": workers}},
            "model": {"builtin": model},
            "data": {
                "train": str(data),
                "format": "tfrecord",
                "features": [{"name": "pixels", "shape": [8, 8, 1], "dtype": "float32"}],
                "label": {"name": "label", "dtype": "int64"},
            },
            "training": {
                "epochs": args.epochs,
                "batchSizePerReplica": args.batch,
                "learningRate": args.lr,
                "seed": args.seed,
            },
        },
    }


# -- running and timing -----------------------------------------------------------


def timed_run(cmd: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """Run `cmd`, stamping Keras' epoch-end lines as they arrive."""
    started = time.monotonic()
    stamps: list[tuple[float, int]] = []
    cpu: list[float] = []
    params: list[int] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=common.ROOT,
        )
        killer = threading.Timer(RUN_TIMEOUT, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                now = time.monotonic()
                log.write(line)
                match = EPOCH_LINE.search(line)
                # Epoch ends only, and only worker 0's (kubetrain run prefixes each replica's).
                worker0 = "[worker-" not in line or "[worker-0]" in line
                if match and match.group(1) == match.group(2) and worker0:
                    stamps.append((now, int(match.group(2))))
                    cpu.append(cpu_seconds(proc.pid))
                if line.startswith('{"params"'):
                    params.append(json.loads(line)["params"])
            code = proc.wait()
        finally:
            killer.cancel()
    if code != 0 or len(stamps) < 2:
        raise RuntimeError(
            f"{cmd[:3]} exited {code} with {len(stamps)} epoch lines; see {log_path}"
        )
    steps = stamps[-1][1]
    span = stamps[-1][0] - stamps[0][0]
    timed_steps = steps * (len(stamps) - 1)
    return {
        "step_s": span / timed_steps,
        # CPU of the process we started (the trainer, or `kubetrain run` itself), per step.
        "cpu_step_s": (cpu[-1] - cpu[0]) / timed_steps,
        "steps_per_epoch": steps,
        "epochs_timed": len(stamps) - 1,
        "first_epoch_end_s": stamps[0][0] - started,
        "wall_s": time.monotonic() - started,
        **({"params": params[0]} if params else {}),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trainer_env(job: dict, work: Path) -> dict[str, str]:
    from kubetrain_operator import plan
    from kubetrain_operator.api import TrainingJob
    from kubetrain_operator.local import free_port

    parsed = TrainingJob.model_validate(job)
    replica = plan.replicas(parsed)[0]
    port = free_port()
    return {
        **os.environ,
        "KUBETRAIN_WORK_DIR": str(work),
        **plan.trainer_env(parsed, replica, lambda r: f"127.0.0.1:{port}", free_port()),
    }


def run_variant(
    variant: str, data: Path, args: argparse.Namespace, work: Path, tag: str
) -> dict[str, Any]:
    kind, _, model = variant.partition(":")
    log = work / f"{tag}-{kind}-{model}.log"
    if kind == "plain":
        cmd = [
            PYTHON,
            __file__,
            "--plain-keras",
            model,
            "--data",
            str(data),
            "--batch",
            str(args.batch),
            "--epochs",
            str(args.epochs),
            "--lr",
            str(args.lr),
            "--seed",
            str(args.seed),
            "--steps",
            str(args.records_total // args.batch),
        ]
        return timed_run(cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}, log)
    if kind == "trainer":
        job = job_doc(f"bench-{model}", model, data, args, workers=1)
        return timed_run([PYTHON, "-m", "kubetrain_trainer"], trainer_env(job, work), log)
    # kind == "kubetrain-run": the local launcher, N workers.
    workers = int(model.removeprefix("w"))
    job = job_doc(f"bench-scale-{workers}", args.scaling_model, data, args, workers=workers)
    job_file = work / f"{tag}-scale-{workers}.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    result = timed_run(
        [KUBETRAIN, "run", str(job_file), "--work-dir", str(work / f"{tag}-scale-{workers}")],
        env,
        log,
    )
    result["examples_s"] = workers * args.batch / result["step_s"]
    return result


# -- report ---------------------------------------------------------------------


def paired(runs: dict[str, list[dict]], a: str, b: str, key: str = "step_s") -> dict[str, float]:
    return common.summary([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=False)])


def markdown(
    env: dict[str, str], args: argparse.Namespace, runs: dict[str, list[dict]], extra: dict
) -> str:
    if any(v.startswith(("plain:", "trainer:")) for v in runs):
        title = "Trainer overhead: kubetrain_trainer vs plain Keras"
    elif runs:
        title = "Trainer scaling: MWMS 2 workers vs 1 worker, `kubetrain run`"
    else:
        title = "Trainer overhead: where the time goes (ablation)"
    lines = [
        f"## {title} ({env['date']})",
        "",
        f"Command: `{common.command_line('trainer_overhead.py')}`",
        "",
        f"Machine: {env['machine']}; load average at start {env['load at start']}, at end "
        f"{extra['load at end']} (shared machine: other work ran alongside).",
        "",
        f"Versions: {env['versions']}.",
        "",
        f"Data: {args.records_total:,} random digits-shaped records (pixels float32 [8, 8, 1], "
        f"int64 label) in {args.shards} TFRecord shards; batch {args.batch} per replica, "
        f"{args.epochs} epochs of {args.records_total // args.batch} steps, Adam "
        f"lr {args.lr}, jit_compile off, shuffle buffer 10,000 in both. Time per step = "
        "(arrival of the last epoch's Keras line - the first epoch's) / steps between: "
        "start-up and the first epoch excluded. "
        f"{args.rounds} rounds, order rotated each round; ms per step as median (min-max); "
        "ratio = trainer / plain, paired per round. CPU ms/step: the process's CPU time "
        "(all threads) over the same epochs.",
    ]
    if any(v.startswith(("plain:", "trainer:")) for v in runs):
        lines += [
            "",
            "| model | plain Keras ms/step | kubetrain_trainer ms/step | ratio | target "
            "| plain CPU ms/step | trainer CPU ms/step | CPU ratio |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
        ]
    verdicts = []
    for model in args.models:
        plain, trainer = f"plain:{model}", f"trainer:{model}"
        if plain not in runs or trainer not in runs:
            continue
        ratio = paired(runs, trainer, plain)
        ok = ratio["median"] <= 1.05
        verdict = f"<= 1.05x: {'met' if ok else 'MISSED'}"
        verdicts.append(f"{model} {ratio['median']:.2f}x ({verdict})")
        p = common.summary([r["step_s"] for r in runs[plain]])
        t = common.summary([r["step_s"] for r in runs[trainer]])
        pc = common.summary([r["cpu_step_s"] for r in runs[plain]])
        tc = common.summary([r["cpu_step_s"] for r in runs[trainer]])
        cpu_ratio = paired(runs, trainer, plain, "cpu_step_s")
        lines.append(
            f"| {model} | {common.cell(p, 2, 1e3)} | {common.cell(t, 2, 1e3)} "
            f"| {common.ratio_cell(ratio)} | {verdict} | {common.cell(pc, 2, 1e3)} "
            f"| {common.cell(tc, 2, 1e3)} | {common.ratio_cell(cpu_ratio)} |"
        )
    if verdicts:
        lines += ["", "Verdict: " + "; ".join(verdicts) + "."]
    params = {v: r[0].get("params") for v, r in runs.items() if r and r[0].get("params")}
    if params:
        lines += [
            "",
            "Plain model parameters: " + ", ".join(f"{k} {v:,}" for k, v in params.items()) + ".",
        ]
    one, two = "kubetrain-run:w1", "kubetrain-run:w2"
    if one in runs and two in runs:
        e1 = common.summary([r["examples_s"] for r in runs[one]])
        e2 = common.summary([r["examples_s"] for r in runs[two]])
        s1 = common.summary([r["step_s"] for r in runs[one]])
        s2 = common.summary([r["step_s"] for r in runs[two]])
        speedup = paired(runs, two, one, "examples_s")
        lines += [
            "",
            f"Scaling, `kubetrain run` of the {args.scaling_model} job on this machine "
            f"(loopback, CPU; 1 worker = one_device, 2 workers = MultiWorkerMirroredStrategy "
            f"with RING collectives; global batch {args.batch} x workers; each worker reads half "
            "the shards):",
            "",
            "| workers | ms/step | examples/s | speed-up vs 1 worker |",
            "|---:|---:|---:|---:|",
            f"| 1 | {common.cell(s1, 2, 1e3)} | {common.cell(e1)} | 1.00x |",
            f"| 2 | {common.cell(s2, 2, 1e3)} | {common.cell(e2)} | {common.ratio_cell(speedup)} |",
            "",
            f"Recorded honestly: both workers share the same {os.cpu_count()} cores, so this "
            "measures the collective's cost, not a speed-up a second machine would give.",
        ]
    ablation = extra.get("ablation") or {}
    if ablation:
        lines += [
            "",
            f"Where the time goes: the same fits in one process per model, one part of the "
            f"trainer added at a time ({args.ablation_steps} steps per epoch, 3 epochs, the "
            f"last 2 timed by an epoch-end callback; {args.rounds} rounds, order rotated). "
            "Ratio vs the plain row of the same model, paired per round:",
            "",
            "| model | configuration | ms/step | ratio | CPU ms/step | CPU ratio |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for key, rows in ablation.items():
            model, _, config = key.partition(":")
            base = f"{model}:plain"
            wall = common.summary([r["step_s"] for r in rows])
            cpu = common.summary([r["cpu_step_s"] for r in rows])
            lines.append(
                f"| {model} | {ABLATION[config]} | {common.cell(wall, 2, 1e3)} "
                f"| {common.ratio_cell(paired(ablation, key, base))} | {common.cell(cpu, 2, 1e3)} "
                f"| {common.ratio_cell(paired(ablation, key, base, 'cpu_step_s'))} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=16_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="the first is not timed")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--scaling-model", default="cnn")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("KUBETRAIN_CACHE", Path.home() / ".cache" / "kubetrain")),
    )
    parser.add_argument("--results", type=Path, default=common.RESULTS)
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch results.md")
    parser.add_argument(
        "--ablation", action="store_true", help="also time the trainer's parts one by one"
    )
    parser.add_argument("--ablation-steps", type=int, default=250, help="steps per epoch")
    parser.add_argument("--no-overhead", action="store_true", help="skip trainer vs plain")
    # Internal: run the plain Keras baseline / the ablation in this process.
    parser.add_argument("--ablate", choices=["cnn", "mlp"], help=argparse.SUPPRESS)
    parser.add_argument("--plain-keras", choices=["cnn", "mlp"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_keras:
        plain_keras(args)
        return 0
    if args.ablate:
        ablate(args)
        return 0

    args.models = [m for m in args.models.split(",") if m]
    args.records_total = (args.records // args.shards) * args.shards
    env = common.environment(["tensorflow-cpu", "keras"])
    t_start = time.monotonic()
    data = make_data(args.data_dir, args.records, args.shards)
    variants = []
    if not args.no_overhead:
        variants += [f"{kind}:{m}" for m in args.models for kind in ("plain", "trainer")]
    if not args.no_scaling:
        variants += ["kubetrain-run:w1", "kubetrain-run:w2"]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="kubetrain-bench-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for variant in common.rotated(variants, r):
                result = run_variant(variant, data, args, work, f"r{r}")
                runs[variant].append(result)
                print(json.dumps({"round": r, "variant": variant, **result}), flush=True)
        ablation = run_ablation(data, args, work) if args.ablation else {}
    extra = {
        "load at end": common.loadavg(),
        "wall_s": time.monotonic() - t_start,
        "ablation": ablation,
    }
    text = markdown(env, args, runs, extra)
    print(text)
    print(f"wall time {extra['wall_s']:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "extra": extra, "runs": runs}, indent=1))
    if not args.no_write:
        common.append_section(text, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
