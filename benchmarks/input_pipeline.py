"""Input pipeline benchmark (issue 8, part 2): the trainer's readers vs native tf.data.

Writes one synthetic table (default 320,000 rows in 16 shards: eight float32
scalar features f0..f7 and an int64 label, ~100 bytes a tf.Example) as
TFRecord, Parquet and CSV, cached outside the clone, then measures examples/s
of the per-worker dataset that `pipeline.make_input` builds under a
OneDeviceStrategy (one worker, shuffle off unless named), against:

* native: ``tf.data.TFRecordDataset(files).repeat().batch(B).map(parse_example,
  AUTOTUNE).prefetch(AUTOTUNE)`` on the same files, wrapped by the same
  strategy (target: trainer TFRecord >= 0.9x);
* the same reader on local disk, for HDFS (a MiniDFSCluster on loopback,
  tests/harness/hdfs.py; target >= 0.9x for TFRecord and Parquet).

Every variant is consumed the same way, by a tf.function that pulls a fixed
number of batches from the distributed iterator (as Keras' train step does),
after a warm-up, so Python per-step overhead is not in the numbers. Variants
rotate order each round; ratios are paired per round. A breakdown then times
each reader's Python generator alone (no tf.data) to locate the cost.

    .venv/bin/python benchmarks/input_pipeline.py
    .venv/bin/python benchmarks/input_pipeline.py --rounds 3 --no-hdfs --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import common  # benchmarks/: sys.path[0] when run as `python benchmarks/<name>.py`

FEATURES = [f"f{i}" for i in range(8)]
FORMATS = ("tfrecord", "parquet", "csv")
SUFFIX = {"tfrecord": "tfrecord", "parquet": "parquet", "csv": "csv"}


# -- data ---------------------------------------------------------------------


def _columns(seed: int, rows: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {f: rng.random(rows, dtype=np.float32) for f in FEATURES}
    cols["label"] = rng.integers(0, 10, rows, dtype=np.int64)
    return cols


def _write_shard(out: str, index: int, rows: int) -> None:
    """One shard in all three formats, same rows (runs in a worker process)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import tensorflow as tf

    cols = _columns(index, rows)
    name = f"part-{index:05d}"
    floats = [cols[f].tolist() for f in FEATURES]
    labels = cols["label"].tolist()
    with tf.io.TFRecordWriter(os.path.join(out, "tfrecord", f"{name}.tfrecord")) as writer:
        for i in range(rows):
            example = tf.train.Example()
            fmap = example.features.feature
            for f, values in zip(FEATURES, floats, strict=True):
                fmap[f].float_list.value.append(values[i])
            fmap["label"].int64_list.value.append(labels[i])
            writer.write(example.SerializeToString())
    table = pa.table(cols)
    pq.write_table(table, os.path.join(out, "parquet", f"{name}.parquet"))
    pacsv.write_csv(table, os.path.join(out, "csv", f"{name}.csv"))


def make_data(root: Path, records: int, shards: int) -> Path:
    """The dataset under `root` (reused when already complete)."""
    out = root / f"bench-input-{records}x{shards}"
    stamp = out / "complete"
    if stamp.exists():
        return out
    for fmt in FORMATS:
        (out / fmt).mkdir(parents=True, exist_ok=True)
    per_shard = records // shards
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(_write_shard, [str(out)] * shards, range(shards), [per_shard] * shards))
    stamp.write_text(json.dumps({"records": per_shard * shards, "shards": shards}))
    print(
        f"data: wrote {per_shard * shards} rows x 3 formats in "
        f"{time.monotonic() - started:.0f}s to {out}",
        flush=True,
    )
    return out


def sizes(data_dir: Path) -> dict[str, int]:
    return {fmt: sum(p.stat().st_size for p in (data_dir / fmt).iterdir()) for fmt in FORMATS}


def data_spec(fmt: str, uri: str) -> Any:
    from kubetrain_operator.api import DataSpec

    return DataSpec(
        train=uri,
        format=fmt,
        features=[{"name": f, "shape": [], "dtype": "float32"} for f in FEATURES],
        label={"name": "label", "shape": [], "dtype": "int64"},
    )


# -- variants -------------------------------------------------------------------


class Bench:
    """Builds and drains each variant's distributed dataset."""

    def __init__(
        self, data_dir: Path, batch: int, hdfs_url: str | None, jvm_pid: int | None = None
    ) -> None:
        import tensorflow as tf

        self.tf = tf
        self.jvm_pid = jvm_pid
        self.batch = batch
        self.strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        self.local = {fmt: str(data_dir / fmt) for fmt in FORMATS}
        self.remote = {fmt: f"{hdfs_url}/bench/{fmt}" for fmt in FORMATS} if hdfs_url else {}

    def uri(self, variant: str) -> tuple[str, str, bool]:
        """(format, uri, shuffle) of a trainer variant like `hdfs:parquet` or `tfrecord+shuffle`."""
        where, _, rest = variant.rpartition(":")
        fmt, _, extra = rest.partition("+")
        uri = self.remote[fmt] if where == "hdfs" else self.local[fmt]
        return fmt, uri, extra == "shuffle"

    @staticmethod
    def patches(variant: str) -> contextlib.AbstractContextManager[Any]:
        """`+stream`: a scratch budget of 1 byte, so remote TFRecords are framed in Python."""
        from kubetrain_trainer.data import copyahead

        if variant.endswith("+stream"):
            return mock.patch.dict(os.environ, {copyahead.SCRATCH_BYTES_ENV: "1"})
        return contextlib.nullcontext()

    def native(self) -> Any:
        tf = self.tf
        files = sorted(str(p) for p in Path(self.local["tfrecord"]).iterdir())
        spec = {f: tf.io.FixedLenFeature([], tf.float32) for f in FEATURES}
        spec["label"] = tf.io.FixedLenFeature([], tf.int64)

        def parse(raw: Any) -> Any:
            parsed = tf.io.parse_example(raw, spec)
            label = parsed.pop("label")
            return parsed, label

        def dataset_fn(ctx: Any) -> Any:
            return (
                tf.data.TFRecordDataset(files)
                .repeat()
                .batch(self.batch, drop_remainder=True)
                .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE)
            )

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def trainer(self, variant: str) -> Any:
        from kubetrain_operator.api import TrainingSpec
        from kubetrain_trainer.data import pipeline

        fmt, uri, shuffle = self.uri(variant)
        training = TrainingSpec(batch_size_per_replica=self.batch)
        made = pipeline.make_input(
            self.strategy, data_spec(fmt, uri), training, uri, shuffle=shuffle, num_workers=1
        )
        return made.dataset

    def measure(self, variant: str, warmup: int, batches: int) -> dict[str, float]:
        """Examples/s over `batches` batches after `warmup`, and the set-up seconds."""
        with self.patches(variant):
            return self._measure(variant, warmup, batches)

    def _measure(self, variant: str, warmup: int, batches: int) -> dict[str, float]:
        tf = self.tf
        started = time.perf_counter()
        dataset = self.native() if variant == "native" else self.trainer(variant)
        setup = time.perf_counter() - started
        iterator = iter(dataset)

        @tf.function
        def drain(n: Any) -> Any:
            total = tf.constant(0, tf.int64)
            for _ in tf.range(n):
                _, label = next(iterator)
                total += tf.reduce_sum(label)
            return total

        drain(tf.constant(warmup))
        jvm = cpu_seconds(self.jvm_pid) if self.jvm_pid else 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        drain(tf.constant(batches)).numpy()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        jvm = (cpu_seconds(self.jvm_pid) - jvm) if self.jvm_pid else 0.0
        gc.collect()
        examples = batches * self.batch
        return {
            "rate": examples / elapsed,
            "setup_s": setup,
            "seconds": elapsed,
            "cpu_us": cpu / examples * 1e6,
            "jvm_cpu_s": jvm,
        }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (the HDFS JVM shares our 2 cores)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- set-up: counting records -------------------------------------------------


def reduce_count(path: str) -> int:
    """Records in a local file the way the trainer counted before: one TF call per record."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset([path])
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def counting(bench: Bench, rounds: int) -> dict[str, Any]:
    """Seconds to count the local TFRecord files: the trainer's header scan vs TF's reader."""
    from kubetrain_trainer.data import pipeline, tfrecord

    files = file_list(bench.local["tfrecord"])
    data = data_spec("tfrecord", files[0])
    steps = {
        "trainer `count_records` (header scan of a memory map)": lambda: sum(
            pipeline.count_records(tfrecord, files, data).values()
        ),
        "previous: `TFRecordDataset.reduce` per file": lambda: sum(reduce_count(f) for f in files),
    }
    out: dict[str, list[float]] = {k: [] for k in steps}
    counts: dict[str, int] = {}
    for r in range(rounds):
        for name in common.rotated(list(steps), r):
            started = time.perf_counter()
            counts[name] = steps[name]()
            out[name].append(time.perf_counter() - started)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"counts differ: {counts}")
    return {k: common.summary(v) for k, v in out.items()}


# -- breakdown: each reader's Python generator alone ---------------------------


def generator(fmt: str, files: list[str]) -> Iterator[int]:
    """Rows per item of the format's own Python generator (what from_generator calls)."""
    from kubetrain_trainer.data import csv, parquet, tfrecord

    data = data_spec(fmt, files[0])
    if fmt == "tfrecord":
        return (len(b) for b in tfrecord.record_batches(files))
    module = parquet if fmt == "parquet" else csv
    return (len(next(iter(cols.values()))) for cols in module.batches(files, data))


def stream_bytes(files: list[str]) -> int:
    from kubetrain_trainer.data import fs

    return sum(len(chunk) for f in files for chunk in fs.filesystem(f).stream(f))


def file_list(uri: str) -> list[str]:
    from kubetrain_trainer.data import files

    return files.list_files(uri)


def breakdown(bench: Bench, rounds: int) -> dict[str, Any]:
    """Rows/s of the Python generators, local and HDFS, plus raw stream MB/s."""
    steps: dict[str, Callable[[], float]] = {}
    places = {"local": bench.local, **({"hdfs": bench.remote} if bench.remote else {})}
    for where, uris in places.items():
        steps[f"{where} stream bytes (MB/s)"] = lambda u=uris: (
            stream_bytes(file_list(u["tfrecord"])) / 1e6
        )
        for fmt in FORMATS:
            steps[f"{where} {fmt} generator (rows/s)"] = lambda u=uris, f=fmt: float(
                sum(generator(f, file_list(u[f])))
            )
    out: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds):
        for name in common.rotated(list(steps), r):
            started = time.perf_counter()
            amount = steps[name]()
            out[name].append(amount / (time.perf_counter() - started))
    result: dict[str, Any] = {k: common.summary(v) for k, v in out.items()}
    # Where the time goes in the slowest HDFS generator (main thread, so cProfile sees it).
    if bench.remote:
        prof = cProfile.Profile()
        files = file_list(bench.remote["tfrecord"])[:2]
        prof.enable()
        sum(generator("tfrecord", files))
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(6)
        result["profile hdfs tfrecord"] = text.getvalue()
    return result


# -- report ---------------------------------------------------------------------


TARGETS = {
    "tfrecord": ("native", 0.9),
    "hdfs:tfrecord": ("tfrecord", 0.9),
    "hdfs:parquet": ("parquet", 0.9),
}
BASELINE_OF = {
    "tfrecord": "native",
    "tfrecord+shuffle": "native",
    "parquet": "native",
    "csv": "native",
    "hdfs:tfrecord": "tfrecord",
    "hdfs:parquet": "parquet",
    "hdfs:csv": "csv",
    "hdfs:tfrecord+stream": "tfrecord",
}
DESCRIBE = {
    "native": "native `TFRecordDataset` + `parse_example` (baseline)",
    "tfrecord": "trainer TFRecord, local",
    "tfrecord+shuffle": "trainer TFRecord, local, shuffle buffer 10,000 (as in training)",
    "parquet": "trainer Parquet, local",
    "csv": "trainer CSV, local",
    "hdfs:tfrecord": "trainer TFRecord, HDFS (copy-ahead to local scratch)",
    "hdfs:parquet": "trainer Parquet, HDFS",
    "hdfs:csv": "trainer CSV, HDFS",
    "hdfs:tfrecord+stream": "previous: TFRecord, HDFS, framed in Python (scratch budget 1 byte)",
}


def paired(runs: dict[str, list[dict[str, float]]], variant: str, base: str) -> dict[str, float]:
    ratios = [v["rate"] / b["rate"] for v, b in zip(runs[variant], runs[base], strict=False)]
    return common.summary(ratios)


def markdown(
    env: dict[str, str],
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, float]]],
    extra: dict[str, Any],
) -> str:
    lines = [
        f"## Input pipeline: trainer readers vs native tf.data ({env['date']})",
        "",
        f"Command: `{common.command_line('input_pipeline.py')}`",
        "",
        f"Machine: {env['machine']}; load average at start {env['load at start']}, at end "
        f"{extra['load at end']} (shared machine: other work ran alongside).",
        "",
        f"Versions: {env['versions']}.",
        "",
        f"Data: {extra['records']:,} rows in {args.shards} shards, eight float32 scalars + an "
        f"int64 label; on disk TFRecord {extra['sizes']['tfrecord'] / 1e6:.0f} MB, Parquet "
        f"{extra['sizes']['parquet'] / 1e6:.0f} MB, CSV {extra['sizes']['csv'] / 1e6:.0f} MB "
        "(page cache warm for both local and HDFS). Each measurement: `make_input` under "
        f"OneDeviceStrategy, one worker, batch {args.batch}, {args.warmup} warm-up batches, then "
        f"{args.batches} batches ({args.batches * args.batch:,} examples) pulled by a "
        f"tf.function; {args.rounds} rounds, order rotated each round. Examples/s as median "
        "(min-max); ratio = variant / its baseline, paired per round. CPU us/example: this "
        "process's CPU time (all threads) over the timed batches / examples; HDFS JVM CPU s: "
        "what the MiniDFSCluster (NameNode + DataNode) burned meanwhile on the same 2 cores.",
        "",
        "| variant | examples/s | set-up s | baseline | ratio | target "
        "| CPU us/example (this process) | HDFS JVM CPU s |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    verdicts = []
    for variant, results in runs.items():
        rate = common.summary([r["rate"] for r in results])
        setup = common.summary([r["setup_s"] for r in results])
        cpu = common.summary([r["cpu_us"] for r in results])
        jvm = common.summary([r["jvm_cpu_s"] for r in results])
        jvm_cell = common.cell(jvm, 1) if variant.startswith("hdfs") else "-"
        base = BASELINE_OF.get(variant)
        ratio = paired(runs, variant, base) if base in runs else None
        target = TARGETS.get(variant)
        verdict = ""
        if target and ratio:
            ok = ratio["median"] >= target[1]
            verdict = f">= {target[1]}x: {'met' if ok else 'MISSED'}"
            verdicts.append(f"{DESCRIBE[variant]}: {ratio['median']:.2f}x, {verdict}")
        lines.append(
            f"| {DESCRIBE[variant]} | {common.cell(rate)} | {common.cell(setup, 2)} "
            f"| {base or '-'} | {common.ratio_cell(ratio) if ratio else '-'} | {verdict} "
            f"| {common.cell(cpu, 2)} | {jvm_cell} |"
        )
    lines += ["", "Verdict: " + ("; ".join(verdicts) or "no targeted variant ran") + "."]
    if extra.get("upload_s"):
        lines += [
            "",
            f"HDFS: MiniDFSCluster (1 NameNode, 1 DataNode, JVM with C1 only as the test "
            f"harness starts it) on loopback; uploading the three formats took "
            f"{extra['upload_s']:.1f}s.",
        ]
    bd = extra.get("breakdown")
    if bd:
        lines += [
            "",
            "Breakdown: each reader's Python generator alone, in the main thread, one pass "
            "over all files, no tf.data (the ceiling of a `from_generator` pipeline), "
            "3 rounds:",
            "",
            "| step | median (min-max) |",
            "|---|---:|",
        ]
        for name, s in bd.items():
            if isinstance(s, dict):
                lines.append(f"| {name} | {common.cell(s, 1 if 'MB/s' in name else 0)} |")
        if bd.get("profile hdfs tfrecord"):
            top = [
                line
                for line in bd["profile hdfs tfrecord"].splitlines()
                if line.strip() and ("{" in line or ".py" in line)
            ][:6]
            lines += [
                "",
                "cProfile of `tfrecord.record_batches` over 2 HDFS files (top by own time):",
                "",
                "```",
                *top,
                "```",
            ]
    counts = extra.get("counting")
    if counts:
        lines += [
            "",
            f"Set-up: counting the {extra['records']:,} records of the {args.shards} local "
            "TFRecord files (what `make_input` does before the first step), seconds, 3 rounds:",
            "",
            "| how | seconds |",
            "|---|---:|",
            *(f"| {name} | {common.cell(s, 2)} |" for name, s in counts.items()),
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=320_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=50, help="batches before timing")
    parser.add_argument("--batches", type=int, default=1000, help="timed batches")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("KUBETRAIN_CACHE", Path.home() / ".cache" / "kubetrain")),
        help="where the generated data is cached",
    )
    parser.add_argument("--no-hdfs", action="store_true")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--no-comparisons",
        action="store_true",
        help="skip the previous implementations (Python TFRecord framing, per-record counting)",
    )
    parser.add_argument("--variants", help="comma-separated subset (default: all)")
    parser.add_argument("--results", type=Path, default=common.RESULTS)
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch results.md")
    args = parser.parse_args()

    env = common.environment(["tensorflow-cpu", "pyarrow", "hdfs-native", "keras"])
    t_start = time.monotonic()
    data_dir = make_data(args.data_dir, args.records, args.shards)
    extra: dict[str, Any] = {
        "records": (args.records // args.shards) * args.shards,
        "sizes": sizes(data_dir),
    }
    variants = ["native", "tfrecord", "tfrecord+shuffle", "parquet", "csv"]
    cluster = None
    if not args.no_hdfs:
        from tests.harness.hdfs import MiniHdfs

        cluster = MiniHdfs().start()
        os.environ["HADOOP_CONF_DIR"] = str(cluster.conf_dir)
        variants += ["hdfs:tfrecord", "hdfs:parquet", "hdfs:csv"]
        if not args.no_comparisons:
            variants += ["hdfs:tfrecord+stream"]
    if args.variants:
        wanted = args.variants.split(",")
        unknown = set(wanted) - set(variants)
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; choose from {variants}")
        variants = [v for v in variants if v in wanted]
    try:
        if cluster is not None:
            from kubetrain_trainer.data import fs

            started = time.monotonic()
            for fmt in FORMATS:
                fs.copy_tree(str(data_dir / fmt), f"{cluster.url}/bench/{fmt}")
            extra["upload_s"] = time.monotonic() - started
        jvm = cluster._proc.pid if cluster is not None and cluster._proc else None
        bench = Bench(data_dir, args.batch, cluster.url if cluster else None, jvm)
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for variant in common.rotated(variants, r):
                result = bench.measure(variant, args.warmup, args.batches)
                runs[variant].append(result)
                print(json.dumps({"round": r, "variant": variant, **result}), flush=True)
        if not args.no_breakdown:
            extra["breakdown"] = breakdown(bench, 3)
        if not args.no_comparisons:
            extra["counting"] = counting(bench, 3)
    finally:
        if cluster is not None:
            cluster.stop()
    extra["load at end"] = common.loadavg()
    extra["wall_s"] = time.monotonic() - t_start
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
