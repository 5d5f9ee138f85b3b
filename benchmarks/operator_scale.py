"""Operator scale benchmark (issue 8, part 1): kubetrain vs a plain client.

Starts a throw-away control plane (tests/harness/cluster.py: etcd +
kube-apiserver + controller-manager + scheduler), kwok with fake nodes
(tests/harness/kwok.py) and the real operator as its least-privilege
ServiceAccount, then for each size N (default 64, 256, 512 workers) and repeat:

* kubetrain: create a TrainingJob with N workers (they tolerate kwok's taint
  and select its nodes); time until all N pods + N services exist, until all
  pods are Running (kwok), and until the job's status says Running with N
  active workers.
* baseline-sync: the same pods and services (built by kubetrain's own planner,
  owned by a TrainingJob in a namespace the operator does not watch, created
  beforehand and outside the timing), created by the kubernetes Python client
  from a pool of KUBETRAIN_MAX_CONCURRENT_CREATES (16) threads, services then
  pods, as the same ServiceAccount. Timed to the same points.
* baseline-async: the same with aiohttp, 16 requests in flight.

Timings come from an observer in a separate process (watches: pods,
services, the job), so it costs every variant the same and shares no GIL with
a client. Variants rotate order per repeat. Ratio = kubetrain / fastest
baseline, median of repeats. Also reported: operator CPU seconds per run and
peak RSS (VmHWM from /proc).

    .venv/bin/python benchmarks/operator_scale.py                 # 64,256,512 x3
    .venv/bin/python benchmarks/operator_scale.py --sizes 64 --repeats 1 --no-write
    .venv/bin/python benchmarks/operator_scale.py --many-jobs 1000 --replicas-per-job 4

``--many-jobs J`` runs J jobs of ``--replicas-per-job`` workers at once
instead of one job per size: time until all J jobs say Running, operator CPU
and peak RSS, reconciles and API requests per job (the operator's
kubetrain_api_requests_total) against the minimum; written to
benchmarks/operator_scale_many.json.

Appends a section to benchmarks/results.md and writes raw numbers as JSON next
to it (benchmarks/operator_scale.json); ``--plot`` also draws the PNG via
benchmarks/plot_operator_scale.py (needs matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import multiprocessing as mp
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from tests.harness.cluster import Cluster, find_tools, start_cluster  # noqa: E402
from tests.harness.kwok import NODE_SELECTOR, TOLERATIONS, start_kwok  # noqa: E402

OP_NS = "bench-kubetrain"  # the only namespace the operator watches
BASE_NS = "bench-baseline"  # unwatched: baseline objects are created by hand
LABEL_JOB = "kubetrain.io/job-name"
IMAGE = "kubetrain/trainer:test"
RUN_TIMEOUT = 600.0
VARIANTS = ("kubetrain", "baseline-sync", "baseline-async")


def job_doc(name: str, namespace: str, workers: int) -> dict[str, Any]:
    """A minimal valid TrainingJob whose workers can only land on kwok nodes."""
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": {
                "worker": {
                    "replicas": workers,
                    "nodeSelector": NODE_SELECTOR,
                    "tolerations": TOLERATIONS,
                }
            },
            "model": {"builtin": "cnn"},
            "data": {
                "train": "/data/digits/train",
                "validation": "/data/digits/validation",
                "format": "tfrecord",
                "features": [{"name": "pixels", "shape": [8, 8, 1], "dtype": "float32"}],
                "label": {"name": "label", "dtype": "int64"},
            },
            "training": {"epochs": 1, "batchSizePerReplica": 32},
            "output": {"modelDir": "/out/model"},
        },
    }


# --- observer (child process) --------------------------------------------------


def _observe(
    kubeconfig: str,
    namespace: str,
    job: str | None,
    n: int,
    want_status: bool,
    ready: Any,
    out: Any,
    jobs: int = 1,
) -> None:
    """Watch pods, services (and the jobs) of one run; put absolute monotonic
    times of each milestone on ``out``. Runs in its own process.

    ``job`` None: every job of the namespace; ``jobs`` of them must say Running
    with ``n // jobs`` active workers each, and ``n`` is all their pods.
    """
    import threading

    from kubernetes import client, config
    from kubernetes.watch.watch import iter_resp_lines

    api = config.new_client_from_config(config_file=kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    selector = f"{LABEL_JOB}={job}" if job else LABEL_JOB
    per_job = n // jobs
    running_jobs: set[str] = set()
    lock = threading.Lock()
    pods: set[str] = set()
    running: set[str] = set()
    services: set[str] = set()
    times: dict[str, float] = {}
    done = threading.Event()

    def mark(key: str) -> None:
        if key not in times:
            times[key] = time.monotonic()
        need = ["objects", "pods_running"] + (["status_running"] if want_status else [])
        if all(k in times for k in need):
            done.set()

    def on_pod(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with lock:
            if kind == "DELETED":
                pods.discard(name)
                running.discard(name)
                return
            if not pods:
                times.setdefault("first_pod", time.monotonic())
            pods.add(name)
            if (obj.get("status") or {}).get("phase") == "Running":
                running.add(name)
            if len(pods) >= n and len(services) >= n:
                mark("objects")
            if len(running) >= n:
                mark("pods_running")

    def on_service(kind: str, obj: dict[str, Any]) -> None:
        with lock:
            if kind != "DELETED":
                services.add(obj["metadata"]["name"])
            if len(pods) >= n and len(services) >= n:
                mark("objects")

    def on_job(kind: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        active = ((status.get("replicaStatuses") or {}).get("worker") or {}).get("active")
        if kind != "DELETED" and status.get("phase") == "Running" and active == per_job:
            with lock:
                running_jobs.add(obj["metadata"]["name"])
                if len(running_jobs) >= jobs:
                    mark("status_running")

    def stream(lister: Any, handler: Any, **kw: Any) -> None:
        """List, then watch from that resourceVersion; resume after the server
        closes the watch (it does, e.g. for a consumer that lagged in a burst)."""

        def relist() -> str:
            listing = json.loads(lister(**kw, _preload_content=False).data)
            for item in listing["items"]:
                handler("ADDED", item)
            return listing["metadata"]["resourceVersion"]

        rv, first = relist(), True
        deadline = time.monotonic() + RUN_TIMEOUT + 30
        while not done.is_set() and time.monotonic() < deadline:
            resp = lister(
                **kw,
                watch=True,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=int(deadline - time.monotonic()) + 1,
                _preload_content=False,
            )
            streams.append(resp)
            if first:
                started.release()
                first = False
            gone = False
            try:
                for line in iter_resp_lines(resp):
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        gone = obj.get("code") == 410
                        errors.append(f"watch error: {obj.get('message')}")
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        handler(event["type"], obj)
            except Exception as err:  # closed by us at the end, or broken
                if not done.is_set():
                    errors.append(f"{type(err).__name__}: {err}")
            if done.is_set():
                break
            reconnects.append(time.monotonic())
            if gone:
                rv = relist()

    streams: list[Any] = []
    errors: list[str] = []
    reconnects: list[float] = []
    started = threading.Semaphore(0)
    watches = [
        (
            functools.partial(core.list_namespaced_pod, namespace),
            on_pod,
            {"label_selector": selector},
        ),
        (
            functools.partial(core.list_namespaced_service, namespace),
            on_service,
            {"label_selector": selector},
        ),
    ]
    if want_status:
        lister = functools.partial(
            custom.list_namespaced_custom_object,
            "kubetrain.io",
            "v1alpha1",
            namespace,
            "trainingjobs",
        )
        watches.append((lister, on_job, {"field_selector": f"metadata.name={job}"} if job else {}))
    for lister, handler, kw in watches:
        threading.Thread(target=stream, args=(lister, handler), kwargs=kw, daemon=True).start()
    for _ in watches:
        started.acquire()
    ready.set()
    done.wait(RUN_TIMEOUT)
    with lock:
        out.put(
            {
                **times,
                "pods": len(pods),
                "services": len(services),
                "running": len(running),
                "running_jobs": len(running_jobs),
                "errors": errors,
                "reconnects": len(reconnects),
            }
        )
    for resp in streams:
        with contextlib.suppress(Exception):
            resp.close()


class Observer:
    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        job: str | None,
        n: int,
        want_status: bool,
        jobs: int = 1,
    ):
        ctx = mp.get_context("spawn")
        self.ready, self.out = ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(
            target=_observe,
            args=(str(kubeconfig), namespace, job, n, want_status, self.ready, self.out, jobs),
            daemon=True,
        )

    def __enter__(self) -> Observer:
        self.proc.start()
        if not self.ready.wait(60):
            raise RuntimeError("observer did not start its watches")
        return self

    def result(self) -> dict[str, Any]:
        res = self.out.get(timeout=RUN_TIMEOUT + 60)
        self.proc.join(10)
        return res

    def __exit__(self, *exc: object) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# --- operator process accounting --------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timings(
    result: dict[str, Any], observed: dict[str, Any], t0: float, counts: tuple[str, ...]
) -> None:
    """Observer times as seconds since `t0`, "running" (status, else pods) and the counts."""
    for key in ("first_pod", "objects", "pods_running", "status_running"):
        if key in observed:
            result[key] = observed[key] - t0
    result["running"] = result.get("status_running", result.get("pods_running"))
    result["counts"] = {k: observed[k] for k in counts}


def _heading(
    title: str, cfg: dict[str, Any], env: dict[str, Any], extra: dict[str, Any], note: str
) -> list[str]:
    """A results.md section's title, command, machine and versions lines."""
    if cfg.get("label"):
        title += f" ({cfg['label']})"
    return [
        f"## {title}, {env['date']}",
        "",
        f"Command: `{cfg['command']}`",
        "",
        f"Machine: {env['machine']}; load average {env['load at start']} at start, "
        f"{extra['load at end']} at end ({note}).",
        "",
        f"Versions: {env['versions']}.",
        "",
    ]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api_requests(metrics_text: str) -> dict[str, float]:
    """The operator's kubetrain_api_requests_total, as {"verb resource": count}."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("kubetrain_api_requests_total{"):
            labels, value = line[len("kubetrain_api_requests_total{") :].rsplit("}", 1)
            kv = dict(part.split("=", 1) for part in labels.split(","))
            key = f"{kv['verb'].strip(chr(34))} {kv['resource'].strip(chr(34))}"
            out[key] = float(value)
    return out


def reconcile_stats(metrics_text: str) -> tuple[float, float]:
    """(count, total seconds) of the operator's kubetrain_reconcile_seconds histogram."""
    count = total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("kubetrain_reconcile_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("kubetrain_reconcile_seconds_sum"):
            total = float(line.split()[-1])
    return count, total


# --- baselines ---------------------------------------------------------------


def planned_objects(body: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The exact services and pods kubetrain's planner makes for this job."""
    from kubetrain_operator import plan
    from kubetrain_operator.api import TrainingJob

    job = TrainingJob.model_validate(body)
    settings = plan.Settings(default_image=IMAGE)
    replicas = plan.replicas(job)
    return (
        [plan.service(job, r, settings) for r in replicas],
        [plan.pod(job, r, settings) for r in replicas],
    )


def create_sync(kubeconfig: Path, services: list[dict], pods: list[dict], conc: int) -> None:
    """kubernetes Python client, a pool of ``conc`` threads: services, then pods."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    ns = pods[0]["metadata"]["namespace"]
    with ThreadPoolExecutor(max_workers=conc) as pool:
        list(pool.map(lambda s: core.create_namespaced_service(ns, s), services))
        list(pool.map(lambda p: core.create_namespaced_pod(ns, p), pods))
    api.close()


def _kubeconfig_parts(kubeconfig: Path) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    cfg = json.loads(kubeconfig.read_text())  # the harness writes JSON kubeconfigs
    cluster = cfg["clusters"][0]["cluster"]
    user = cfg["users"][0]["user"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if "token" in user:
        headers["Authorization"] = f"Bearer {user['token']}"
    return cluster["server"], ctx, headers


def create_async(kubeconfig: Path, services: list[dict], pods: list[dict], conc: int) -> None:
    """aiohttp, ``conc`` requests in flight on one session: services, then pods."""
    import aiohttp

    server, ctx, headers = _kubeconfig_parts(kubeconfig)
    ns = pods[0]["metadata"]["namespace"]
    bodies = {
        "services": [json.dumps(s).encode() for s in services],
        "pods": [json.dumps(p).encode() for p in pods],
    }

    async def main() -> None:
        sem = asyncio.Semaphore(conc)
        conn = aiohttp.TCPConnector(ssl=ctx, limit=conc)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

            async def post(kind: str, body: bytes) -> None:
                async with (
                    sem,
                    session.post(f"{server}/api/v1/namespaces/{ns}/{kind}", data=body) as resp,
                ):
                    await resp.read()
                    if resp.status >= 300:
                        raise RuntimeError(f"POST {kind}: {resp.status} {await resp.text()}")

            for kind in ("services", "pods"):
                await asyncio.gather(*(post(kind, b) for b in bodies[kind]))

    asyncio.run(main())


# --- the benchmark -----------------------------------------------------------


class Bench:
    def __init__(self, cluster: Cluster, sa_kubeconfig: Path, operator_pid: int, conc: int):
        from kubernetes import client

        self.cluster = cluster
        self.sa_kubeconfig = sa_kubeconfig
        self.pid = operator_pid
        self.conc = conc
        self.api = cluster.api_client()
        self.kwok: Any = None
        self.operator_metrics: Any = None  # () -> the operator's /metrics text
        self.after_running = 0.0  # seconds to keep watching the operator after Running
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create_job(self, doc: dict[str, Any]) -> dict[str, Any]:
        ns = doc["metadata"]["namespace"]
        return self.custom.create_namespaced_custom_object(
            "kubetrain.io", "v1alpha1", ns, "trainingjobs", doc
        )

    def count(self, kind: str, ns: str, job: str | None) -> int:
        lister = (
            self.core.list_namespaced_pod if kind == "pods" else self.core.list_namespaced_service
        )
        selector = f"{LABEL_JOB}={job}" if job else LABEL_JOB
        resp = lister(ns, label_selector=selector, _preload_content=False)
        return len(json.loads(resp.data)["items"])

    def cleanup(self, ns: str, job: str) -> None:
        """Delete the job, then its pods (grace 0) and services directly: far
        faster than waiting for the garbage collector's rate-limited deletes."""
        from kubernetes.client.exceptions import ApiException

        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(
                "kubetrain.io", "v1alpha1", ns, "trainingjobs", job
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.custom.get_namespaced_custom_object(
                    "kubetrain.io", "v1alpha1", ns, "trainingjobs", job
                )
            except ApiException as err:
                if err.status == 404:
                    break
            time.sleep(0.5)
        selector = f"{LABEL_JOB}={job}"
        while time.monotonic() < deadline:
            self.core.delete_collection_namespaced_pod(
                ns, label_selector=selector, grace_period_seconds=0
            )
            self.core.delete_collection_namespaced_service(ns, label_selector=selector)
            if self.count("pods", ns, job) == 0 and self.count("services", ns, job) == 0:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"cleanup of {ns}/{job} did not finish")

    def cleanup_all(self, ns: str) -> None:
        """Every job of the namespace, then their pods (grace 0) and services."""
        from kubernetes.client.exceptions import ApiException

        self.custom.delete_collection_namespaced_custom_object(
            "kubetrain.io", "v1alpha1", ns, "trainingjobs"
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            left = self.custom.list_namespaced_custom_object(
                "kubetrain.io", "v1alpha1", ns, "trainingjobs", limit=1
            )
            if not left["items"]:
                break
            time.sleep(1)
        while time.monotonic() < deadline:
            try:
                self.core.delete_collection_namespaced_pod(
                    ns, label_selector=LABEL_JOB, grace_period_seconds=0
                )
                self.core.delete_collection_namespaced_service(ns, label_selector=LABEL_JOB)
            except ApiException as err:  # 504: thousands of deletes outlast one request
                if err.status not in (500, 504):
                    raise
            if self.count("pods", ns, None) == 0 and self.count("services", ns, None) == 0:
                break
            time.sleep(2)
        else:
            raise RuntimeError(f"cleanup of {ns} did not finish")

    def run_many(self, variant: str, jobs: int, replicas: int, rep: int) -> dict[str, Any]:
        """`jobs` TrainingJobs of `replicas` workers each, created at once (16 in flight).

        kubetrain: timed from the first job create. Baseline: the jobs exist
        beforehand (owners only, unwatched namespace); timed from the first of
        the same pods and services, created by the plain client.
        """
        ns = OP_NS if variant == "kubetrain" else BASE_NS
        total = jobs * replicas
        docs = [job_doc(f"m{rep}-{variant[0]}{i}", ns, replicas) for i in range(jobs)]
        result: dict[str, Any] = {
            "variant": variant,
            "n": total,
            "jobs": jobs,
            "replicas": replicas,
            "rep": rep,
        }
        with ThreadPoolExecutor(max_workers=self.conc) as pool:
            if variant == "kubetrain":
                with Observer(self.cluster.kubeconfig, ns, None, total, True, jobs) as obs:
                    text = self.operator_metrics()
                    rec0, api0 = reconcile_stats(text), api_requests(text)
                    cpu0, t0 = cpu_seconds(self.pid), time.monotonic()
                    list(pool.map(self.create_job, docs))
                    result["jobs_created"] = time.monotonic() - t0
                    res = obs.result()
                    result["operator_cpu_s"] = cpu_seconds(self.pid) - cpu0
                    text = self.operator_metrics()
                    result["reconciles"] = reconcile_stats(text)[0] - rec0[0]
                    result["reconciles_per_job"] = result["reconciles"] / jobs
                    api1 = api_requests(text)
                    result["api_per_job"] = {
                        k: (v - api0.get(k, 0.0)) / jobs for k, v in api1.items()
                    }
                    result["api_requests_per_job"] = sum(result["api_per_job"].values())
                    if self.after_running > 0:
                        cpu1 = cpu_seconds(self.pid)
                        time.sleep(self.after_running)
                        text = self.operator_metrics()
                        result["after_running_s"] = self.after_running
                        result["after_running_cpu_s"] = cpu_seconds(self.pid) - cpu1
                        result["after_running_reconciles"] = (
                            reconcile_stats(text)[0] - rec0[0] - result["reconciles"]
                        )
            else:
                bodies = list(pool.map(self.create_job, docs))
                services: list[dict] = []
                pods: list[dict] = []
                for body in bodies:
                    s, p = planned_objects(body)
                    services += s
                    pods += p
                create = create_sync if variant == "baseline-sync" else create_async
                with Observer(self.cluster.kubeconfig, ns, None, total, False, jobs) as obs:
                    t0 = time.monotonic()
                    create(self.sa_kubeconfig, services, pods, self.conc)
                    result["client_done"] = time.monotonic() - t0
                    res = obs.result()
        _timings(result, res, t0, ("pods", "services", "running", "running_jobs"))
        result["operator_rss_mib"] = rss_mib(self.pid)
        missing = [k for k in ("objects", "running") if result.get(k) is None]
        if missing:
            raise RuntimeError(f"{variant} {jobs}x{replicas} rep={rep}: no {missing}: {res}")
        self.cleanup_all(ns)
        time.sleep(5)  # let the operator forget the deleted jobs
        return result

    def run(self, variant: str, n: int, rep: int) -> dict[str, Any]:
        job = f"s{n}-r{rep}-{variant.split('-')[-1]}"
        ns = OP_NS if variant == "kubetrain" else BASE_NS
        doc = job_doc(job, ns, n)
        result: dict[str, Any] = {"variant": variant, "n": n, "rep": rep}
        if variant == "kubetrain":
            with Observer(self.cluster.kubeconfig, ns, job, n, True) as obs:
                rec0 = reconcile_stats(self.operator_metrics())
                cpu0, t0 = cpu_seconds(self.pid), time.monotonic()
                self.create_job(doc)
                res = obs.result()
                result["operator_cpu_s"] = cpu_seconds(self.pid) - cpu0
                rec1 = reconcile_stats(self.operator_metrics())
                result["reconciles"] = rec1[0] - rec0[0]
                result["reconcile_s"] = rec1[1] - rec0[1]
                if self.after_running > 0:
                    # Is the operator quiet once the job runs? (resync only, or a backlog)
                    cpu1 = cpu_seconds(self.pid)
                    time.sleep(self.after_running)
                    rec2 = reconcile_stats(self.operator_metrics())
                    result["after_running_s"] = self.after_running
                    result["after_running_cpu_s"] = cpu_seconds(self.pid) - cpu1
                    result["after_running_reconciles"] = rec2[0] - rec1[0]
        else:
            body = self.create_job(doc)  # owner of the objects; the operator ignores BASE_NS
            services, pods = planned_objects(body)
            create = create_sync if variant == "baseline-sync" else create_async
            with Observer(self.cluster.kubeconfig, ns, job, n, False) as obs:
                t0 = time.monotonic()
                create(self.sa_kubeconfig, services, pods, self.conc)
                result["client_done"] = time.monotonic() - t0
                res = obs.result()
        _timings(result, res, t0, ("pods", "services", "running"))
        result["operator_rss_mib"] = rss_mib(self.pid)
        missing = [k for k in ("objects", "running") if result.get(k) is None]
        if missing:
            pods = self.cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout
            raise RuntimeError(
                f"{variant} n={n} rep={rep}: no {missing} within {RUN_TIMEOUT}s: {res}\n"
                f"{pods[:3000]}\n--- kwok ---\n{self.kwok.tail(20) if self.kwok else ''}"
            )
        self.cleanup(ns, job)
        time.sleep(3)  # let the garbage collector and the operator settle
        return result


def summarize(results: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per size: each variant's median (min-max) of every milestone, and paired
    ratios (kubetrain / baseline of the same round), summarised the same way."""
    out: dict[int, dict[str, Any]] = {}
    for n in sorted({r["n"] for r in results}):
        mine = [r for r in results if r["n"] == n]
        row: dict[str, Any] = {}
        for variant in VARIANTS:
            rs = [r for r in mine if r["variant"] == variant]
            if rs:
                row[variant] = {
                    key: common.summary([r[key] for r in rs])
                    for key in (
                        "first_pod",
                        "objects",
                        "pods_running",
                        "running",
                        "operator_cpu_s",
                        "operator_rss_mib",
                        "reconciles",
                        "jobs_created",
                        "reconciles_per_job",
                        "api_requests_per_job",
                        "after_running_cpu_s",
                        "after_running_reconciles",
                    )
                    if all(key in r for r in rs)
                }
        by_round: dict[int, dict[str, dict[str, Any]]] = {}
        for r in mine:
            by_round.setdefault(r["rep"], {})[r["variant"]] = r
        ratios: dict[str, list[float]] = {}
        for rnd in by_round.values():
            if "kubetrain" not in rnd:
                continue
            bases = [b for b in ("baseline-sync", "baseline-async") if b in rnd]
            for key in ("objects", "running"):
                for b in bases:
                    ratios.setdefault(f"{key}/{b}", []).append(rnd["kubetrain"][key] / rnd[b][key])
                if bases:
                    best = min(rnd[b][key] for b in bases)
                    ratios.setdefault(f"{key}/best", []).append(rnd["kubetrain"][key] / best)
        row["ratio"] = {k: common.summary(v) for k, v in ratios.items()}
        out[n] = row
    return out


def _version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (proc.stdout or proc.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def environment(cluster: Cluster) -> dict[str, str]:
    env = common.environment(["kopf", "kubernetes", "aiohttp"])
    b = cluster.bin_dir
    tools = {
        "kube-apiserver": _version([str(b / "kube-apiserver"), "--version"]),
        "etcd": _version([str(b / "etcd"), "--version"]),
        "kwok": _version([str(b / "kwok"), "--version"]),
    }
    env["versions"] += ", " + ", ".join(f"{k}: {v}" for k, v in tools.items())
    return env


def markdown(report: dict[str, Any]) -> str:
    """The results.md section for one run (``report`` as saved in the JSON)."""
    env, cfg, extra = report["env"], report["config"], report["extra"]
    summary = {int(k): v for k, v in report["summary"].items()}
    cell, rcell = common.cell, common.ratio_cell

    def c(row: dict[str, Any], variant: str, key: str) -> str:
        stats = (row.get(variant) or {}).get(key)
        return cell(stats, 1) if stats else "-"

    def r(row: dict[str, Any], key: str) -> str:
        stats = row["ratio"].get(key)
        return rcell(stats) if stats else "-"

    lines = _heading(
        "Operator scale: kubetrain vs a plain client",
        cfg,
        env,
        extra,
        "a shared machine: other sessions' tests ran alongside, so absolute seconds are "
        "inflated and noisy; the ratios are paired per round",
    )
    lines += [
        f"Setup: real etcd + kube-apiserver + kube-controller-manager + kube-scheduler "
        f"(their default client QPS), kwok with {cfg['nodes']} fake nodes, the operator as its "
        f"least-privilege ServiceAccount with KUBETRAIN_MAX_CONCURRENT_CREATES="
        f"{cfg['concurrency']}, KUBETRAIN_RESYNC_SECONDS={cfg['resync']}"
        + (f", {cfg['operator_env']}" if cfg.get("operator_env") else "")
        + f". Baselines create the same pods and services (kubetrain's own planner, "
        f"objects built before the clock starts, owner a TrainingJob in a namespace the "
        f"operator does not watch) with {cfg['concurrency']} requests in flight, services "
        f"then pods, as the same ServiceAccount: *sync* = kubernetes Python client from "
        f"{cfg['concurrency']} threads (default pool), *async* = aiohttp. "
        f"{cfg['repeats']} rounds, variant order rotated per round. Seconds as median "
        f"(min-max). *Objects*: all N pods and N services exist. *Running*: kubetrain = "
        f"the job's status says Running with N active workers; baselines = all N pods "
        f"Running (kwok).",
        "",
        "| workers | kubetrain objects | sync objects | async objects | kubetrain Running "
        "| sync Running | async Running |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in summary.items():
        lines.append(
            f"| {n} | {c(row, 'kubetrain', 'objects')} | {c(row, 'baseline-sync', 'objects')} "
            f"| {c(row, 'baseline-async', 'objects')} | {c(row, 'kubetrain', 'running')} "
            f"| {c(row, 'baseline-sync', 'running')} | {c(row, 'baseline-async', 'running')} |"
        )
    lines += [
        "",
        "Paired ratios, kubetrain / baseline of the same round (target <= 1.25x at 512 "
        "against the faster baseline):",
        "",
        "| workers | objects / faster | objects / sync | objects / async | Running / faster "
        "| Running / sync | Running / async | operator CPU s | reconciles | "
        "pods-Running -> status lag s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in summary.items():
        k = row.get("kubetrain") or {}
        lag = "-"
        if "running" in k and "pods_running" in k:
            lag = f"{k['running']['median'] - k['pods_running']['median']:.1f}"
        lines.append(
            f"| {n} | {r(row, 'objects/best')} | {r(row, 'objects/baseline-sync')} "
            f"| {r(row, 'objects/baseline-async')} | {r(row, 'running/best')} "
            f"| {r(row, 'running/baseline-sync')} | {r(row, 'running/baseline-async')} "
            f"| {c(row, 'kubetrain', 'operator_cpu_s')} | {c(row, 'kubetrain', 'reconciles')} "
            f"| {lag} |"
        )
    after = [
        (n, row["kubetrain"])
        for n, row in summary.items()
        if "after_running_cpu_s" in row.get("kubetrain", {})
    ]
    if after:
        lines += [
            "",
            f"After Running, over the next {cfg.get('after_running', 0):.0f} s: "
            + "; ".join(
                f"{n} workers: operator CPU {cell(k['after_running_cpu_s'], 1)} s, "
                f"{cell(k['after_running_reconciles'])} reconciles"
                for n, k in after
            )
            + ".",
        ]
    lines += [
        "",
        f"Operator memory: {extra['idle_rss_mib']:.0f} MiB RSS idle after start-up, peak "
        f"(VmHWM) {extra['peak_rss_mib']:.0f} MiB over the run; RSS after each size's last "
        "run: "
        + ", ".join(
            f"{n}: {row['kubetrain']['operator_rss_mib']['max']:.0f} MiB"
            for n, row in summary.items()
            if "kubetrain" in row and "operator_rss_mib" in row["kubetrain"]
        )
        + ".",
        "",
    ]
    if extra.get("plot"):
        lines += [f"![seconds vs workers]({extra['plot']})", ""]
    return "\n".join(lines)


def markdown_many(report: dict[str, Any]) -> str:
    """The results.md section of a many-jobs run (``--many-jobs``)."""
    env, cfg, extra = report["env"], report["config"], report["extra"]
    cell, rcell = common.cell, common.ratio_cell
    jobs, replicas = cfg["many_jobs"], cfg["replicas_per_job"]
    (row,) = report["summary"].values()
    mine = [r for r in report["results"] if r["variant"] == "kubetrain"]
    kinds = sorted({k for r in mine for k in r.get("api_per_job", {})})
    api = {k: common.summary([r["api_per_job"].get(k, 0.0) for r in mine]) for k in kinds}
    minimum = 2 * replicas + 1

    def c(variant: str, key: str, digits: int = 1) -> str:
        stats = (row.get(variant) or {}).get(key)
        return cell(stats, digits) if stats else "-"

    def r(key: str) -> str:
        stats = row["ratio"].get(key)
        return rcell(stats) if stats else "-"

    lines = _heading(
        f"Operator scale: {jobs:,} TrainingJobs x {replicas} workers at once",
        cfg,
        env,
        extra,
        "shared machine",
    )
    lines += [
        f"Setup as in the single-job runs (kwok with {cfg['nodes']} fake nodes, "
        f"KUBETRAIN_MAX_CONCURRENT_CREATES={cfg['concurrency']}, "
        f"KUBETRAIN_RESYNC_SECONDS={cfg['resync']}"
        + (f", {cfg['operator_env']}" if cfg.get("operator_env") else "")
        + f"). kubetrain: the bench posts {jobs:,} TrainingJobs ({cfg['concurrency']} in "
        f"flight), timed from the first post. Baselines: the same {jobs * replicas:,} "
        f"services then {jobs * replicas:,} pods, built beforehand by kubetrain's planner, "
        f"created with {cfg['concurrency']} requests in flight (*sync* threads, *async* "
        f"aiohttp). {cfg['repeats']} rounds, order rotated; seconds as median (min-max).",
        "",
        "| variant | jobs posted | all pods + services | all pods Running | Running |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        if variant in row:
            lines.append(
                f"| {variant} | {c(variant, 'jobs_created')} | {c(variant, 'objects')} "
                f"| {c(variant, 'pods_running')} | {c(variant, 'running')} |"
            )
    lines += [
        "",
        f"*Running* for kubetrain: all {jobs:,} jobs' status says Running with {replicas} "
        "active workers; for the baselines: all pods Running.",
        "",
        f"Paired ratios kubetrain / faster baseline: objects {r('objects/best')}, "
        f"Running {r('running/best')}.",
        "",
        f"Operator: CPU {c('kubetrain', 'operator_cpu_s')} s from the first post to all "
        f"Running; peak RSS (VmHWM) {extra['peak_rss_mib']:.0f} MiB over the run "
        f"({extra['idle_rss_mib']:.0f} MiB idle); reconciles per job "
        f"{c('kubetrain', 'reconciles_per_job')}.",
        "",
        f"API requests per job until all Running: {c('kubetrain', 'api_requests_per_job')} "
        f"in all, against a minimum of {minimum} ({replicas} pod + {replicas} service "
        "creates + 1 status write):",
        "",
        "| request | per job |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {cell(v, 1)} |" for k, v in api.items()]
    k = row.get("kubetrain") or {}
    if "after_running_cpu_s" in k:
        lines += [
            "",
            f"After all Running, over the next {cfg.get('after_running', 0):.0f} s: operator "
            f"CPU {cell(k['after_running_cpu_s'], 1)} s, "
            f"{cell(k['after_running_reconciles'])} reconciles.",
        ]
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,256,512")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--resync", type=int, default=5, help="KUBETRAIN_RESYNC_SECONDS")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="subset of " + ",".join(VARIANTS)
    )
    parser.add_argument("--label", default="", help="a name for this run in results.md")
    parser.add_argument(
        "--many-jobs",
        type=int,
        default=0,
        help="instead of --sizes: this many jobs at once (--replicas-per-job workers each)",
    )
    parser.add_argument("--replicas-per-job", type=int, default=4)
    parser.add_argument(
        "--after-running",
        type=float,
        default=0,
        help="seconds to keep measuring operator CPU and reconciles after the job is Running",
    )
    parser.add_argument("--json", type=Path, help="also save the raw numbers here")
    parser.add_argument(
        "--no-write", action="store_true", help="leave results.md and operator_scale.json alone"
    )
    parser.add_argument("--plot", action="store_true", help="draw operator_scale.png")
    parser.add_argument("--from-json", type=Path, help="only re-render a saved run")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary: profile the operator")
    parser.add_argument(
        "--profile",
        type=Path,
        default=Path("operator_scale_profile.svg"),
        help="py-spy output: .svg flame graph, .txt collapsed stacks",
    )
    parser.add_argument(
        "--operator-env", action="append", default=[], help="KEY=VALUE for the operator"
    )
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        print((markdown_many if report["config"].get("many_jobs") else markdown)(report))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {unknown}")

    from tests.e2e.operator_fixture import install_rbac, start_operator

    work = Path(tempfile.mkdtemp(prefix="kubetrain-bench-"))
    t_start = time.monotonic()
    results: list[dict[str, Any]] = []
    with start_cluster(find_tools()) as cluster:
        cluster.apply_project_crds()
        env = environment(cluster)
        for ns in (OP_NS, BASE_NS):
            cluster.kubectl("create", "namespace", ns)
        with start_kwok(cluster, work / "kwok", nodes=args.nodes) as kwok:
            sa = install_rbac(cluster)
            op_env = {
                "KUBETRAIN_NAMESPACES": OP_NS,
                "KUBETRAIN_MAX_CONCURRENT_CREATES": str(args.concurrency),
                "KUBETRAIN_RESYNC_SECONDS": str(args.resync),
                "KUBETRAIN_TRAINER_IMAGE": IMAGE,
                **dict(kv.split("=", 1) for kv in args.operator_env),
            }
            operator = start_operator(sa, work / "operator.log", **op_env)
            spy = None
            try:
                time.sleep(3)
                idle_rss = rss_mib(operator.process.pid)
                if args.py_spy:
                    fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"
                    spy = subprocess.Popen(
                        [
                            str(args.py_spy),
                            "record",
                            "-o",
                            str(args.profile),
                            "-f",
                            fmt,
                            "--pid",
                            str(operator.process.pid),
                            "--rate",
                            "100",
                            "--nonblocking",
                            "--gil",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                bench = Bench(cluster, sa, operator.process.pid, args.concurrency)
                bench.kwok = kwok
                bench.operator_metrics = operator.metrics
                bench.after_running = args.after_running
                for rep in range(args.repeats) if args.many_jobs else ():
                    for variant in common.rotated(variants, rep):
                        res = bench.run_many(variant, args.many_jobs, args.replicas_per_job, rep)
                        results.append(res)
                        print(json.dumps(res), flush=True)
                for n in () if args.many_jobs else sizes:
                    for rep in range(args.repeats):
                        for variant in common.rotated(variants, rep):
                            res = bench.run(variant, n, rep)
                            results.append(res)
                            print(json.dumps(res), flush=True)
                peak = peak_rss_mib(operator.process.pid)
            finally:
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
                operator.stop()
                print(f"operator log: {operator.log_path}", file=sys.stderr)
    report: dict[str, Any] = {
        "env": env,
        "config": {
            "command": common.command_line("operator_scale.py"),
            "label": args.label,
            "sizes": sizes,
            "repeats": args.repeats,
            "concurrency": args.concurrency,
            "nodes": args.nodes,
            "resync": args.resync,
            "after_running": args.after_running,
            "many_jobs": args.many_jobs,
            "replicas_per_job": args.replicas_per_job,
            "operator_env": " ".join(args.operator_env),
        },
        "extra": {
            "peak_rss_mib": peak,
            "idle_rss_mib": idle_rss,
            "load at end": common.loadavg(),
            "wall_s": time.monotonic() - t_start,
        },
        "results": results,
        "summary": summarize(results),
    }
    if args.many_jobs:
        text = markdown_many(report)
        print(text)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=1) + "\n")
        if not args.no_write:
            (HERE / "operator_scale_many.json").write_text(json.dumps(report, indent=1) + "\n")
            common.append_section(text)
        return 0
    if args.plot:
        from benchmarks.plot_operator_scale import plot

        png = HERE / "operator_scale.png"
        plot([(args.label, report["summary"])], png)
        report["extra"]["plot"] = png.name
    text = markdown(json.loads(json.dumps(report)))
    print(text)
    if args.json is not None:  # an explicit --json is written even with --no-write
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if not args.no_write:
        (HERE / "operator_scale.json").write_text(json.dumps(report, indent=1) + "\n")
        common.append_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
