"""The HDFS NameNode stops mid-training: fail or retry within seconds, then resume.

Real trainer pods read TFRecords from a real HDFS minicluster and keep their
epoch checkpoints there. The NameNode is stopped while both jobs train:
- `gives-up` (backoffLimit 0) must end Failed, naming the NameNode, quickly;
- `retries` (backoffLimit 20) restarts its worker group; once the NameNode is
  back it must resume from its HDFS checkpoint (not epoch 0) and succeed.
Pods live in their own network namespaces, so the cluster listens on all
interfaces and its DataNode advertises the bridge address pods reach.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer.data import fs
from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster
from tests.harness.hdfs import MiniHdfs
from tests.harness.kubelet import TestKubelet

pytestmark = pytest.mark.e2e

#: Seconds from the NameNode stopping to a job failing (or restarting): "fail fast".
DETECT_BOUND = 60


@pytest.fixture(scope="module")
def pod_hdfs(kubelet: TestKubelet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniHdfs]:
    """An HDFS that pods can reach: DataNode advertised at the node's bridge IP."""
    with MiniHdfs(tmp_path_factory.mktemp("pod-hdfs"), datanode_host=kubelet.node_ip) as hdfs:
        yield hdfs


def _job(name: str, ns: str, url: str, data: Path, out: Path, backoff: int) -> dict[str, Any]:
    doc = base._job(
        name, ns, data, out, runPolicy={"restartPolicy": "ExitCode", "backoffLimit": backoff}
    )
    doc["spec"]["training"]["epochs"] = 30
    doc["spec"]["data"].update(
        train=f"{url}/digits/train",
        validation=f"{url}/digits/validation",
        hdfs={"configMap": "hadoop-conf", "user": getpass.getuser()},
    )
    doc["spec"]["output"]["checkpointDir"] = f"{url}/checkpoints/{name}"
    return doc


_STARTS = re.compile(r"resuming from epoch (\d+)|(starting at epoch 0)")


def _last_start(log: str) -> int:
    """The epoch the last trainer start began at (0 when it started fresh)."""
    starts = _STARTS.findall(log)
    assert starts, "the trainer never reached its checkpoint restore"
    resumed, _ = starts[-1]
    return int(resumed or 0)


@pytest.mark.timeout(600)
def test_namenode_outage_fails_fast_or_resumes_from_the_checkpoint(
    cluster: Cluster,
    kubelet: TestKubelet,
    operator: RunningOperator,
    pod_hdfs: MiniHdfs,
    digits_host_dir: Path,
    out_dir: Path,
    tmp_path: Path,
) -> None:
    ns = base._namespace(cluster, "rel-namenode")
    fs.copy_tree(str(digits_host_dir), f"{pod_hdfs.url}/digits")
    pod_url = f"hdfs://{kubelet.node_ip}:{pod_hdfs.rpc_port}"
    conf = pod_hdfs.write_conf(tmp_path / "conf", kubelet.node_ip)
    cluster.kubectl("create", "configmap", "hadoop-conf", "-n", ns, f"--from-file={conf}")
    gives_up = _job("gives-up", ns, pod_url, digits_host_dir, out_dir / "a", backoff=0)
    gives_up["spec"]["replicas"]["worker"]["replicas"] = 1
    base._apply(cluster, gives_up)
    base._apply(cluster, _job("retries", ns, pod_url, digits_host_dir, out_dir / "b", backoff=20))

    def status(name: str) -> dict[str, Any]:
        return lifecycle._status(cluster, ns, name)

    def epoch(name: str) -> int:
        s = status(name)
        return (s.get("progress") or {}).get("epoch", 0) if s.get("phase") == "Running" else 0

    base._wait(
        "both jobs past epoch 2",
        lambda: min(epoch("gives-up"), epoch("retries")) >= 2,
        300,
        operator.log,
    )
    pod_hdfs.stop_namenode()
    stopped = time.monotonic()

    failed = lifecycle._wait_phase(
        cluster, ns, "gives-up", ("Succeeded", "Failed"), DETECT_BOUND, operator.log
    )
    failed_in = time.monotonic() - stopped
    condition = lifecycle._condition(failed, "Failed")
    assert failed["phase"] == "Failed" and condition["reason"] == "BackoffLimitExceeded", condition
    assert "exit code 138" in condition["message"], condition
    assert "cannot reach the HDFS NameNode" in condition["message"], condition
    base._wait(
        "retries restarting",
        lambda: status("retries").get("restartCount", 0) >= 1,
        DETECT_BOUND,
        operator.log,
    )
    restarted_in = time.monotonic() - stopped

    def starts() -> int:
        return len(_STARTS.findall(kubelet.logs(ns, "retries-worker-0")))

    before = starts()
    pod_hdfs.start_namenode()
    back = time.monotonic()
    down = back - stopped
    # Status progress keeps the last epoch reported, so the trainer's own log says when it resumed.
    base._wait("retries restored its checkpoint", lambda: starts() > before, 180, operator.log)
    training_again_in = time.monotonic() - back
    done = lifecycle._wait_phase(cluster, ns, "retries", ("Succeeded", "Failed"), 300, operator.log)
    assert done["phase"] == "Succeeded", done
    resumed = _last_start(kubelet.logs(ns, "retries-worker-0"))
    assert resumed >= 2, f"resumed from epoch {resumed}, expected the checkpoint (>= 2)"
    assert (out_dir / "b" / "model" / "job.json").exists()
    print(
        f"\nNameNode down {down:.0f}s; gives-up Failed {failed_in:.1f}s after the stop; "
        f"retries restarted {restarted_in:.1f}s after it and restored its checkpoint "
        f"{training_again_in:.1f}s after the NameNode returned, resumed from epoch {resumed}, "
        f"restartCount {done['restartCount']}"
    )

    base._delete_and_collect(cluster, ns, ["gives-up", "retries"], operator.log)
