"""Shared helpers for the benchmarks: machine facts, statistics, results.md.

Every benchmark reports ratios against a baseline measured in the same run,
interleaved with it (the order rotates each round), because these machines
are small and shared. Statistics are median (min-max) over rounds; ratios are
taken per round (paired), then summarised the same way.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.md"
# The scripts run as `python benchmarks/<name>.py`: make the repository importable too.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def quiet_tensorflow() -> None:
    """Keep TF's C++ start-up chatter out of the benchmark's output (set before importing TF)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Every benchmark imports this module before TensorFlow.
quiet_tensorflow()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def environment(packages: Sequence[str]) -> dict[str, str]:
    """Date, machine, load and the versions of `packages` (distribution names)."""
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    versions = {"python": platform.python_version()}
    for pkg in packages:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "?"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB",
        "load at start": loadavg(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max (NaN when there are no values)."""
    if not values:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def cell(s: dict[str, float], digits: int = 0, scale: float = 1.0) -> str:
    """`median (min-max)` of a summary."""
    f = f"{{:,.{digits}f}}"
    return (
        f"{f.format(s['median'] * scale)} "
        f"({f.format(s['min'] * scale)}-{f.format(s['max'] * scale)})"
    )


def ratio_cell(s: dict[str, float]) -> str:
    return f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """`items` rotated by the round number, so no variant always runs first or last."""
    k = round_index % len(items) if items else 0
    return [*items[k:], *items[:k]]


def command_line(script: str) -> str:
    return " ".join([".venv/bin/python", f"benchmarks/{script}", *sys.argv[1:]])


def append_section(text: str, path: Path = RESULTS) -> None:
    """Append a section to results.md under an exclusive lock.

    Append-only and locked: another benchmark's section, written before or at
    the same time, is never overwritten.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                fh.write(
                    "# kubetrain benchmarks\n\nSections are appended by the scripts in "
                    "benchmarks/; newest last.\n"
                )
            fh.write("\n" + text.rstrip() + "\n")
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
