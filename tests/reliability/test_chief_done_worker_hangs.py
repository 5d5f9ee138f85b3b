"""The chief finishes while a worker hangs: the job still succeeds and the worker is stopped.

TFJob's tracker is full of "chief done, workers hang forever": the job
stays Running and the pods keep their nodes. Here a real worker process
trains to the end and then never exits (a user's stray non-daemon thread);
the job must reach Succeeded on the chief's exit, per successPolicy chief,
and cleanPodPolicy Running must delete the hanging pod within seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e

#: Seconds the operator may take to delete a running pod once the job is done.
CLEANUP_BOUND = 30


@pytest.mark.timeout(480)
def test_a_worker_hanging_after_the_chief_finished_is_cleaned_up(
    cluster: Cluster, operator: RunningOperator, digits_host_dir: Path, out_dir: Path
) -> None:
    ns = base._namespace(cluster, "rel-chief-done")
    doc = base._job("hangs", ns, digits_host_dir, out_dir)
    doc["spec"]["training"]["epochs"] = 2
    doc["spec"]["model"] = {
        "entrypoint": "faulty:hangs_after_training",
        "kwargs": {"marker": "/out/marker"},
    }
    pythonpath = [{"name": "PYTHONPATH", "value": str(lifecycle.MODELS)}]
    doc["spec"]["replicas"] = {
        "chief": {"replicas": 1, "env": pythonpath},
        "worker": {"replicas": 1, "env": pythonpath},
    }
    base._apply(cluster, doc)

    def pods() -> list[str]:
        return cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()

    status = lifecycle._wait_phase(cluster, ns, "hangs", ("Succeeded", "Failed"), 360, operator.log)
    succeeded_at = time.monotonic()
    assert status["phase"] == "Succeeded", status
    message = lifecycle._condition(status, "Succeeded")["message"]
    assert "chief hangs-chief-0 succeeded (successPolicy chief)" in message

    base._wait(
        "the hanging worker deleted",
        lambda: pods() == ["pod/hangs-chief-0"],
        CLEANUP_BOUND,
        operator.log,
    )
    cleaned_in = time.monotonic() - succeeded_at
    # The worker really did finish training and hang: it was not killed mid-fit.
    assert (out_dir / "hanging-worker-0").read_text() == "trained, hanging\n"
    assert (out_dir / "model" / "job.json").exists()
    final = base._wait(
        "status counts the worker gone",
        lambda: (
            (s := lifecycle._status(cluster, ns, "hangs"))["replicaStatuses"]["worker"]["active"]
            == 0
            and s
        ),
        30,
        operator.log,
    )
    assert final["phase"] == "Succeeded" and final["restartCount"] == 0
    assert final["replicaStatuses"]["chief"]["succeeded"] == 1
    print(f"\nhanging worker deleted {cleaned_in:.1f}s after the job was seen Succeeded")

    base._delete_and_collect(cluster, ns, ["hangs"], operator.log)
