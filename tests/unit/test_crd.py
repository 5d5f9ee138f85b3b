"""The CRD is generated from the models and checked in; it must not drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrain_operator import api
from kubetrain_operator.crd import crd, crd_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_crd_matches_models() -> None:
    checked_in = (ROOT / "manifests" / "crd.yaml").read_text()
    assert checked_in == crd_yaml(), "manifests/crd.yaml is stale: run `make crd`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for key in ("properties",):
            for name, child in node.get(key, {}).items():
                out += _walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def _root() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_is_documented(part: str) -> None:
    schema = _root()["properties"][part]
    undocumented = [p for p, n in _walk(schema) if p and "description" not in n and "type" in n]
    # Leaves of free-form maps and items of simple lists carry their parent's text.
    undocumented = [p for p in undocumented if not p.endswith(("{}", "[]"))]
    assert not undocumented, undocumented


def test_cross_field_rules_are_cel() -> None:
    spec = _root()["properties"]["spec"]
    rules = {r["rule"] for r in spec["x-kubernetes-validations"]}
    assert rules == {r.cel for r in api.SPEC_RULES}
    model_rules = spec["properties"]["model"]["x-kubernetes-validations"]
    assert [r["rule"] for r in model_rules] == [r.cel for r in api.MODEL_RULES]


def test_names_columns_and_status() -> None:
    doc = crd()
    version = doc["spec"]["versions"][0]
    assert doc["spec"]["names"]["shortNames"] == ["tj"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Workers", "Epoch", "Loss"] and "Age" in columns
    defaults = _root()["properties"]["spec"]["properties"]["runPolicy"]["default"]
    assert defaults["cleanPodPolicy"] == "Running"
    yaml.safe_load(crd_yaml())
