"""Plot benchmarks/operator_scale.json: seconds vs workers, kubetrain and baselines.

    .venv/bin/python benchmarks/plot_operator_scale.py [operator_scale.json ...] [-o PNG]

Needs matplotlib (the ``bench`` extra). Medians as lines, min-max as error
bars; left panel "all pods + services exist", right panel "Running". With
several JSON files (e.g. before/after an operator change) each gets its own
row, with its own baselines; ``--label`` names the rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STYLE = {
    "kubetrain": {"marker": "o", "color": "tab:blue"},
    "baseline-sync": {"marker": "s", "color": "tab:gray", "linestyle": "--"},
    "baseline-async": {"marker": "^", "color": "tab:green", "linestyle": "--"},
}


def _series(
    summary: dict[Any, Any], variant: str, key: str
) -> tuple[list[int], list[float], list[list[float]]]:
    xs, ys, err = [], [], [[], []]
    for n in sorted(summary, key=int):
        stats = (summary[n].get(variant) or {}).get(key)
        if not stats:
            continue
        xs.append(int(n))
        ys.append(stats["median"])
        err[0].append(stats["median"] - stats["min"])
        err[1].append(stats["max"] - stats["median"])
    return xs, ys, err


def plot(runs: list[tuple[str, dict[Any, Any]]], out: Path) -> Path:
    """Draw runs ``(label, summary)`` to ``out``, one row each.

    Each row shows a run's kubetrain and its own baselines: runs on a shared
    machine are only comparable within themselves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 4.0 * len(runs)), squeeze=False)
    titles = {"objects": "all pods + services exist", "running": "Running"}
    for row, (label, summ) in enumerate(runs):
        for ax, key in zip(axes[row], ("objects", "running"), strict=True):
            for variant, style in STYLE.items():
                xs, ys, err = _series(summ, variant, key)
                if xs:
                    name = "kubetrain (job status)" if variant == "kubetrain" else variant
                    ax.errorbar(xs, ys, yerr=err, label=name, capsize=3, **style)
            ax.set_title(f"{label + ': ' if label else ''}time until {titles[key]}", fontsize=10)
            ax.set_xlabel("workers (a pod + a headless service each)")
            ax.set_ylabel("seconds (median, min-max)")
            ax.grid(alpha=0.3)
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
        axes[row][0].legend(fontsize=8)
    fig.suptitle("TrainingJob scale on kube-apiserver + kwok (2 shared cores)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="*", type=Path, default=[HERE / "operator_scale.json"])
    parser.add_argument(
        "--label", action="append", default=[], help="row label, one per JSON in order"
    )
    parser.add_argument("-o", "--out", type=Path, default=HERE / "operator_scale.png")
    args = parser.parse_args()
    summaries = [json.loads(p.read_text())["summary"] for p in args.json]
    labels = args.label + [
        "" if len(args.json) == 1 else p.stem for p in args.json[len(args.label) :]
    ]
    print(plot(list(zip(labels, summaries, strict=True)), args.out))


if __name__ == "__main__":
    main()
