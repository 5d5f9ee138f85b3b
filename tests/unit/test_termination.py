"""The trainer's termination message: what the operator reads when a pod ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetrain_trainer import termination


@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("KUBETRAIN_TERMINATION_LOG", str(path))
    return path


def test_a_reason_is_stripped_and_cut_to_what_kubernetes_keeps(log_file: Path) -> None:
    termination.write("  boom " + "x" * 5000)
    text = log_file.read_text()
    assert text.startswith("boom x") and len(text) == termination.MAX_CHARS


def test_final_progress_is_json_and_drops_metrics_rather_than_break(log_file: Path) -> None:
    snapshot = {"epoch": 3, "epochs": 3, "step": 30, "metrics": {"accuracy": 0.97}}
    termination.write_final_progress(snapshot)
    assert json.loads(log_file.read_text()) == snapshot

    many = {f"metric_{i}": 0.5 for i in range(200)}
    termination.write_final_progress({**snapshot, "metrics": many})
    assert json.loads(log_file.read_text()) == {**snapshot, "metrics": {}}


def test_no_log_file_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRAIN_TERMINATION_LOG", str(tmp_path / "missing" / "log"))
    termination.write("reason")
