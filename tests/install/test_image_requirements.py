"""Each image's exact pip requirement set, installed into a fresh virtualenv.

No Docker engine here, so this is the closest real check of the Dockerfile's
`pip install ".[trainer]"`: the trainer set imports TensorFlow, hdfs-native
and pyarrow, needs no JVM, and runs `python -m kubetrain_trainer --help`.
(The operator set is checked in tests/unit/test_operator_without_tf.py.)
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IMPORTS = """
import importlib.util, sys
import tensorflow, keras, tf_keras, hdfs_native, pyarrow, kubetrain_trainer.train
assert keras.__version__ == "3.15.1", keras.__version__
assert importlib.util.find_spec("kopf") is None, "the trainer image must not carry the operator"
print("ok", tensorflow.__version__)
"""


@pytest.mark.trainer
@pytest.mark.timeout(900)
def test_trainer_extra_installs_and_runs(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{ROOT}[trainer]"], check=True, cwd=tmp_path
    )
    imports = subprocess.run(
        [python, "-c", IMPORTS], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert imports.returncode == 0, imports.stderr[-3000:]
    assert imports.stdout.startswith("ok 2.21.0")
    helped = subprocess.run(
        [python, "-m", "kubetrain_trainer", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "KUBETRAIN_JOB" in helped.stdout
