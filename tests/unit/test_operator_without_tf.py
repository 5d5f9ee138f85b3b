"""The operator package works in an environment where TensorFlow is absent.

This installs `.[operator]`, exactly as the operator image does, into a fresh
virtual environment, so an accidental TensorFlow import anywhere in
kubetrain_operator fails here rather than in a user's cluster.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import importlib, importlib.util, pkgutil, sys
import kubetrain_operator
assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed"
names = [m.name for m in pkgutil.walk_packages(kubetrain_operator.__path__, "kubetrain_operator.")]
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
assert not bad, bad
print("imported", len(names), "modules")
"""


@pytest.mark.timeout(600)
def test_operator_extra_has_no_tensorflow(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{ROOT}[operator]"],
        check=True,
        cwd=tmp_path,
    )
    result = subprocess.run(
        [python, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
    validate = subprocess.run(
        [env_dir / "bin" / "kubetrain", "validate", ROOT / "examples" / "digits-local.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    assert sys.version_info[:2] == (3, 11)
