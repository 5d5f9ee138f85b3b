"""Bad runtime input ends the job as Failed, with a message a user can act on.

Four jobs, each broken the way users break them: their model function
raises, the data path is wrong, a TFRecord file is corrupt, a feature key is
misspelt. Real trainer processes hit the real errors; the trainer's reason
travels through the pod's termination message into the Failed condition.
Each must name what to fix (the entry point, the path, the file, the key and
the keys present), not only an exit code or a stack trace.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e


def _broken(name: str, ns: str, data: Path, out: Path, **data_spec: Any) -> dict[str, Any]:
    """One worker, one epoch, ExitCode policy: a permanent error fails at once."""
    doc = base._job(name, ns, data, out, runPolicy={"restartPolicy": "ExitCode"})
    doc["spec"]["replicas"]["worker"]["replicas"] = 1
    doc["spec"]["training"]["epochs"] = 1
    doc["spec"]["data"].update(data_spec)
    return doc


def _corrupt_copy(digits: Path, dest: Path) -> Path:
    """A copy of the digits data whose second train file has garbage mid-file."""
    shutil.copytree(digits, dest)
    bad = sorted((dest / "train").iterdir())[1]
    raw = bytearray(bad.read_bytes())
    raw[100:110] = b"x" * 10
    bad.write_bytes(raw)
    return dest


@pytest.mark.timeout(420)
def test_bad_input_fails_with_a_message_that_says_what_to_fix(
    cluster: Cluster,
    operator: RunningOperator,
    host_dir: Path,
    digits_host_dir: Path,
    out_dir: Path,
) -> None:
    ns = base._namespace(cluster, "rel-bad-input")
    corrupt = _corrupt_copy(digits_host_dir, host_dir / "digits-corrupt")
    raising = _broken("raises", ns, digits_host_dir, out_dir)
    raising["spec"]["model"] = {"entrypoint": "faulty:raises"}
    raising["spec"]["replicas"]["worker"]["env"] = [
        {"name": "PYTHONPATH", "value": str(lifecycle.MODELS)}
    ]
    jobs = {
        "raises": (
            raising,
            "spec.model.entrypoint faulty:raises raised ValueError: "
            "layer sizes do not add up: 64 != 10",
        ),
        "no-path": (
            _broken("no-path", ns, digits_host_dir, out_dir, train="/data/digits/trian"),
            "no input files match '/data/digits/trian'",
        ),
        "corrupt": (
            _broken("corrupt", ns, corrupt, out_dir),
            "/data/digits/train/part-00001.tfrecord: corrupt TFRecord file (corrupted record at",
        ),
        "wrong-key": (
            _broken(
                "wrong-key",
                ns,
                digits_host_dir,
                out_dir,
                features=[{"name": "pixles", "shape": [8, 8, 1], "dtype": "float32"}],
            ),
            "spec.data.features key 'pixles' is not in its records; keys present: label, pixels",
        ),
    }
    started = time.monotonic()
    for doc, _ in jobs.values():
        base._apply(cluster, doc)

    took = {}
    for name, (_, expected) in jobs.items():
        status = lifecycle._wait_phase(
            cluster, ns, name, ("Succeeded", "Failed"), 300, operator.log
        )
        took[name] = round(time.monotonic() - started)
        failed = lifecycle._condition(status, "Failed")
        assert status["phase"] == "Failed" and failed["reason"] == "PodFailed", status
        assert expected in failed["message"], failed["message"]
        assert "Traceback" not in failed["message"] and "function_node" not in failed["message"]
        assert status["restartCount"] == 0
    print(f"\nseconds from apply to Failed: {took}")

    base._delete_and_collect(cluster, ns, jobs, operator.log)
