"""`kubetrain validate/plan/crd`: exit codes and messages a user can act on."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from kubetrain_operator.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits-local.yaml"
runner = CliRunner()


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "valid TrainingJob" in result.output


def test_broken_yaml_exits_2_with_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", _write(tmp_path, "spec: [unclosed\n  a: b")])
    assert result.exit_code == 2
    assert "not valid YAML at line" in result.stderr


def test_unknown_field_exits_2_naming_it(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["training"]["epoch"] = 3
    result = runner.invoke(app, ["validate", _write(tmp_path, yaml.safe_dump(doc))])
    assert result.exit_code == 2
    assert "spec.training.epoch: Extra inputs are not permitted" in result.stderr


def test_bad_value_names_field_and_value(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["replicas"]["worker"]["replicas"] = -1
    result = runner.invoke(app, ["run", _write(tmp_path, yaml.safe_dump(doc))])
    assert result.exit_code == 2
    assert "spec.replicas.worker.replicas" in result.stderr and "got -1" in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_plan_prints_services_and_pods() -> None:
    result = runner.invoke(app, ["plan", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.stdout))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("Service", "digits-worker-0"),
        ("Service", "digits-worker-1"),
        ("Pod", "digits-worker-0"),
        ("Pod", "digits-worker-1"),
    ]


def test_crd_command_prints_the_crd() -> None:
    result = runner.invoke(app, ["crd"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["kind"] == "CustomResourceDefinition"
