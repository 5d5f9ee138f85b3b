"""Write the values table of charts/kubetrain/README.md from values.yaml.

    python scripts/values_table.py           # rewrite the table in place
    python scripts/values_table.py --check   # exit 1 when the table is stale

A row is a key of values.yaml with a comment above it and no commented keys
below it: `image.tag` is a row, `image` is not, and `resources` is one row
(its Kubernetes fields carry no comments of their own). The description is
that comment, the default the key's value in values.yaml, the type comes from
values.schema.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "kubetrain"
BEGIN = "<!-- values-table:begin (scripts/values_table.py) -->"
END = "<!-- values-table:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):(?: |$)")


@dataclass(frozen=True)
class Entry:
    """A key of values.yaml and the comment lines right above it."""

    path: tuple[str, ...]
    comment: str


def entries(values_text: str) -> list[Entry]:
    """Every mapping key of values.yaml in file order, with its comment ('' if none)."""
    out: list[Entry] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = KEY.match(line)
        if match:
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            out.append(Entry(tuple(key for _, key in stack), " ".join(comment)))
        comment = []
    return out


def rows(values_text: str) -> list[Entry]:
    """The documented keys that have no documented keys below them."""
    documented = [e for e in entries(values_text) if e.comment]
    return [
        e
        for e in documented
        if not any(o.path[: len(e.path)] == e.path and o.path != e.path for o in documented)
    ]


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _schema_type(schema: dict[str, Any], path: tuple[str, ...]) -> str:
    node = schema
    for key in path:
        node = node["properties"][key]
    kind = node["type"]
    return " or ".join(kind) if isinstance(kind, list) else kind


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def table(values_text: str, schema: dict[str, Any]) -> str:
    """The Markdown table: key, type, default, description."""
    values = yaml.safe_load(values_text)
    lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for entry in rows(values_text):
        default = json.dumps(_lookup(values, entry.path), separators=(", ", ": "))
        lines.append(
            f"| `{'.'.join(entry.path)}` | {_schema_type(schema, entry.path)} "
            f"| `{_cell(default)}` | {_cell(entry.comment)} |"
        )
    return "\n".join(lines)


def with_table(readme: str, new_table: str) -> str:
    """The README with the text between the markers replaced by `new_table`."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return f"{readme[:start]}\n{new_table}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the table is stale")
    parser.add_argument("--chart", type=Path, default=CHART, help="chart directory")
    args = parser.parse_args(argv)
    readme_path = args.chart / "README.md"
    readme = readme_path.read_text()
    schema = json.loads((args.chart / "values.schema.json").read_text())
    wanted = with_table(readme, table((args.chart / "values.yaml").read_text(), schema))
    if wanted == readme:
        return 0
    if args.check:
        print(
            f"{readme_path}: values table is stale; run python scripts/values_table.py",
            file=sys.stderr,
        )
        return 1
    readme_path.write_text(wanted)
    print(f"wrote {readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
