"""Prepare training data with Spark, then train on it with kubetrain.

How most users get data into a TrainingJob: a Spark job reads raw records,
cleans and reshapes them with DataFrames and writes Parquet to HDFS; the
trainer reads that Parquet (`format: parquet`) with no JVM of its own.

This example runs pyspark in `local[*]` mode on scikit-learn's digits, kept in
their raw form: a CSV of 64 pixel intensities (0-16) and a label per row.

    pip install 'kubetrain[spark]'      # pyspark; needs Java 17+
    python examples/spark_prepare.py hdfs://namenode:8020/datasets/digits-spark
    kubetrain run examples/digits-spark.yaml

It writes `<out>/train/part-*.parquet` (80%) and `<out>/validation/` (20%),
each row a `pixels` array<float> of 64 values in [0, 1] (the job's feature of
shape [8, 8, 1]) and a `label` bigint. Spark uses its own bundled Hadoop
client: it reads core-site.xml/hdfs-site.xml from HADOOP_CONF_DIR, and
`spark.hadoop.fs.defaultFS` is set to the output's NameNode.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PIXELS = 64
MAX_INTENSITY = 16.0  # the digits' raw pixel values are 0..16


def write_raw_digits(path: Path) -> Path:
    """scikit-learn's digits as raw CSV: header `p0..p63,label`, integer cells."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(",".join([*(f"p{i}" for i in range(PIXELS)), "label"]) + "\n")
        for row, label in zip(x.astype(int), y, strict=True):
            out.write(",".join(map(str, [*row, label])) + "\n")
    return path


# For a few MB of data the JVM's start-up dominates: the C1 JIT alone and the serial
# GC halve a local run on 2 cores. Leave them off for real data volumes.
FAST_START = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def session(out: str, master: str = "local[*]", *, fast_start: bool = False) -> SparkSession:
    """A small SparkSession whose default filesystem is `out`'s NameNode.

    Must run before any other SparkSession in this process: driver options
    only apply when pyspark starts the JVM.
    """
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        # Everything stays on this machine: bind the driver to loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName("kubetrain-digits-prepare")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if fast_start:
        builder = builder.config("spark.driver.extraJavaOptions", FAST_START)
    parts = urlsplit(out)
    if parts.scheme in ("hdfs", "viewfs"):
        builder = builder.config("spark.hadoop.fs.defaultFS", f"{parts.scheme}://{parts.netloc}")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def prepare(
    spark: SparkSession,
    raw_csv: str,
    out: str,
    *,
    validation_fraction: float = 0.2,
    train_files: int = 4,
    validation_files: int = 2,
    seed: int = 0,
) -> dict[str, int]:
    """Raw CSV -> scaled `pixels` array + `label` -> train/validation Parquet under `out`.

    Returns the row count of each split.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType(
        [T.StructField(f"p{i}", T.IntegerType(), False) for i in range(PIXELS)]
        + [T.StructField("label", T.IntegerType(), False)]
    )
    raw = spark.read.csv(raw_csv, header=True, schema=schema, mode="FAILFAST")
    rows = raw.select(
        F.array(
            *((F.col(f"p{i}").cast("double") / MAX_INTENSITY).cast("float") for i in range(PIXELS))
        ).alias("pixels"),
        F.col("label").cast("long").alias("label"),
    ).where(F.col("label").between(0, 9))
    rows.cache()  # parse the CSV once for both splits
    train, validation = rows.randomSplit([1 - validation_fraction, validation_fraction], seed=seed)
    counts = {}
    for name, frame, files in (
        ("train", train, train_files),
        ("validation", validation, validation_files),
    ):
        # One file per partition: several files let the workers shard by file.
        frame.repartition(files).write.mode("overwrite").parquet(f"{out.rstrip('/')}/{name}")
        counts[name] = spark.read.parquet(f"{out.rstrip('/')}/{name}").count()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="Output directory: hdfs://namenode:port/path or a local path.")
    parser.add_argument(
        "--raw", help="Raw digits CSV (p0..p63,label); default: written from scikit-learn."
    )
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*]).")
    parser.add_argument(
        "--fast-start", action="store_true", help="JVM flags for small data: quicker start-up."
    )
    args = parser.parse_args(argv)

    spark = session(args.out, args.master, fast_start=args.fast_start)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raw = args.raw or str(write_raw_digits(Path(tmp) / "digits.csv"))
            # A bare local path would resolve against fs.defaultFS (HDFS): say file://.
            if not urlsplit(raw).scheme:
                raw = Path(raw).resolve().as_uri()
            counts = prepare(spark, raw, args.out)
    finally:
        spark.stop()
    print(
        f"wrote {counts['train']} train and {counts['validation']} validation rows "
        f"as Parquet under {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
