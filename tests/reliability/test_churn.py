"""Load: 200 jobs created and deleted in a churn; memory stays flat, no watch is lost.

Pods are unschedulable on purpose (no training processes on a 2-core
machine): the load is on the operator's watches, reconciles and API calls.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.operator_fixture import install_rbac, parked_job, start_operator
from tests.harness.cluster import Cluster

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "churn"
TOTAL = 200
LIVE = 40  # jobs alive at once; older ones are deleted as new ones arrive
BATCH = 10


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _pods(cluster: Cluster, selector: str = "") -> list[dict[str, Any]]:
    args = ["get", "pods", "-n", NAMESPACE, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(cluster.kubectl(*args).stdout)["items"]


@pytest.mark.timeout(900)
def test_churn_of_200_jobs_keeps_memory_flat_and_watches_alive(
    cluster: Cluster, tmp_path: Path
) -> None:
    operator = start_operator(install_rbac(cluster), tmp_path / "operator.log")
    try:
        cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        names = [f"churn-{i:03d}" for i in range(TOTAL)]
        rss = []
        for start in range(0, TOTAL, BATCH):
            batch = names[start : start + BATCH]
            manifest = "---\n".join(yaml.safe_dump(parked_job(n, NAMESPACE)) for n in batch)
            cluster.kubectl("apply", "-f", "-", input=manifest)
            old = names[max(0, start - LIVE) : max(0, start + BATCH - LIVE)]
            if old:
                cluster.kubectl("delete", "tj", "-n", NAMESPACE, "--wait=false", *old)
            rss.append(_rss_mib(operator.process.pid))
            time.sleep(1)
        assert operator.process.poll() is None, operator.log()[-3000:]

        survivors = names[-LIVE:]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            jobs = json.loads(cluster.kubectl("get", "tj", "-n", NAMESPACE, "-o", "json").stdout)[
                "items"
            ]
            phases = {j["metadata"]["name"]: (j.get("status") or {}).get("phase") for j in jobs}
            settled = sorted(phases) == sorted(survivors) and set(phases.values()) == {"Created"}
            if settled and len(_pods(cluster)) == 2 * LIVE:
                break
            time.sleep(2)
        pods = _pods(cluster)
        owners = {p["metadata"]["labels"]["kubetrain.io/job-name"] for p in pods}
        assert owners == set(survivors), sorted(owners ^ set(survivors))[:10]
        assert len(pods) == 2 * LIVE

        # The watches survived the churn: a new job is acted on at once.
        cluster.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump(parked_job("after-churn", NAMESPACE))
        )
        started = time.monotonic()
        while not _pods(cluster, "kubetrain.io/job-name=after-churn"):
            assert time.monotonic() - started < 30, operator.log()[-3000:]
            time.sleep(0.5)

        warm = rss[len(rss) // 3]
        growth = max(rss) - warm
        print(f"operator RSS MiB: start {rss[0]:.0f}, warm {warm:.0f}, peak {max(rss):.0f}")
        assert growth < 40, f"RSS grew {growth:.0f} MiB after warm-up: {rss}"
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
