"""One job's reconcile, end to end: read, decide (status.py), act, report.

The decision is pure; this module only gathers the inputs and carries out
the actions. Job events, pod events and the resync loop only *request* a
reconcile (workqueue.py: requests made while one waits or runs fold into one
more); a lock per job keeps direct `reconcile` calls from overlapping them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime

from pydantic import ValidationError

from kubetrain_operator import kube, metrics, plan, status
from kubetrain_operator.api import TrainingJob, TrainingJobStatus, format_errors
from kubetrain_operator.podcache import PodCache
from kubetrain_operator.settings import OperatorSettings
from kubetrain_operator.workqueue import WorkQueue

log = logging.getLogger(__name__)
INVALID_SPEC = "InvalidSpec"
RUNNING_PHASES = ("Running", "Restarting")
# Reconciles in parallel. Mostly GIL-bound CPU and short reads; creates of all
# jobs share the Kube's pool of KUBETRAIN_MAX_CONCURRENT_CREATES threads.
RECONCILE_WORKERS = 8


class Operator:
    """Reconciles TrainingJobs; shared by every kopf handler through kopf's memo."""

    def __init__(self, settings: OperatorSettings, client: kube.Kube) -> None:
        self.settings = settings
        self.kube = client
        self.known: set[tuple[str, str]] = set()
        self.phases: dict[tuple[str, str], str] = {}
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._timers: dict[tuple[str, str], threading.Timer] = {}
        self._timers_lock = threading.Lock()
        self._stop = threading.Event()
        self._requests: WorkQueue[tuple[str, str]] = WorkQueue(
            lambda key, poll: self.reconcile(*key, poll_progress=poll),
            RECONCILE_WORKERS,
            "reconcile",
        )
        # Every change to a job's pods requests a reconcile of the job.
        self.pods = PodCache(client, settings.namespaces, self.request)

    def remember(self, namespace: str, name: str) -> None:
        self.known.add((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self.known.discard((namespace, name))
        self.phases.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        self._requests.discard((namespace, name))
        self._requeue(namespace, name, None)

    def request(self, namespace: str, name: str, poll_progress: bool = False) -> None:
        """Queue a reconcile of the job, unless one is already waiting; returns at once."""
        self._requests.request((namespace, name), poll_progress)

    def reconcile(self, namespace: str, name: str, poll_progress: bool = False) -> None:
        with self._locks[(namespace, name)], metrics.RECONCILE_SECONDS.time():
            try:
                self._reconcile(namespace, name, poll_progress)
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                raise
        metrics.record_phases(list(self.phases.values()))

    def _reconcile(self, namespace: str, name: str, poll_progress: bool) -> None:
        body = self.kube.get_job(namespace, name)
        if body is None:
            self.forget(namespace, name)
            return
        now = datetime.now(UTC)
        try:
            job = TrainingJob.model_validate(body)
        except ValidationError as err:
            self._reject(body, "; ".join(format_errors(err)), now)
            return
        pods = self.pods.pods(namespace, name)
        views = [status.pod_view(p) for p in pods if _is_replica(p)]
        actions = status.reconcile(job, views, now, body["metadata"].get("generation"))
        if actions.delete:
            self.kube.delete_pods(namespace, actions.delete)
            self.pods.deleted(namespace, name, actions.delete)
        if actions.create:
            self._create(job, set(actions.create))
        if poll_progress and actions.status.phase in RUNNING_PHASES:
            self._poll_progress(job, pods, actions.status, now)
        self.phases[(namespace, name)] = actions.status.phase
        old_status = job.status or TrainingJobStatus()
        if actions.status.restart_count > old_status.restart_count:
            metrics.RESTARTS.inc()
        old = old_status.wire()
        new = actions.status.wire()
        if new != old:
            self.kube.patch_status(namespace, name, new)
        for event in actions.events:
            self.kube.post_event(body, event)
        if actions.delete_job:
            log.info("deleting %s/%s: ttlSecondsAfterFinished passed", namespace, name)
            self.kube.delete_job(namespace, name)
        self._requeue(namespace, name, actions.requeue_after)

    def _requeue(self, namespace: str, name: str, delay: float | None) -> None:
        """Reconcile the job again in `delay` seconds (None: not at all).

        A restart back-off ends without any event to announce it; waiting for
        the next resync would stretch it by up to resync_seconds. The newest
        decision replaces an older timer, and the status keeps the back-off,
        so a restarted operator schedules it again from its first listing.
        """
        key = (namespace, name)
        with self._timers_lock:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            if delay is None or self._stop.is_set():
                return
            # A hair late rather than early: early finds the back-off not over yet.
            timer = threading.Timer(delay + 0.05, self.request, key)
            timer.daemon = True
            self._timers[key] = timer
            timer.start()

    def _create(self, job: TrainingJob, names: set[str]) -> None:
        """Services (and the job's NetworkPolicy) first, so DNS names exist
        and the pods are fenced before they start."""
        wanted = [r for r in plan.replicas(job) if r.name in names]
        services = [plan.service(job, r, self.settings.plan) for r in wanted]
        pods = plan.pods(job, wanted, self.settings.plan)
        if self.settings.network_policy and self.kube.create(
            plan.network_policy(job, self.settings.plan)
        ):
            metrics.OBJECTS_CREATED.labels(kind="NetworkPolicy").inc()
        new_services = self.kube.create_all(services)
        entries = self.pods.creating(pods)
        try:
            new_pods = self.kube.create_all(pods)
        except Exception:
            self.pods.forget_created(entries)
            raise
        metrics.OBJECTS_CREATED.labels(kind="Service").inc(new_services)
        metrics.OBJECTS_CREATED.labels(kind="Pod").inc(new_pods)
        log.info("%s: created %d pods, %d services", job.metadata.name, new_pods, new_services)

    def _poll_progress(
        self, job: TrainingJob, pods: list[dict], new: TrainingJobStatus, now: datetime
    ) -> None:
        reporter = plan.reporter(job).name
        pod = next((p for p in pods if p["metadata"]["name"] == reporter), None)
        pod_ip = ((pod or {}).get("status") or {}).get("podIP")
        if not pod_ip:
            return
        snapshot = kube.fetch_progress(
            pod_ip, self.settings.plan.progress_port, self.settings.progress_timeout_seconds
        )
        progress = status.progress_from(snapshot, now)
        if progress is not None:
            new.progress = progress

    def _reject(self, body: dict, message: str, now: datetime) -> None:
        """A job the models reject (the CRD should have): fail it, say why, create nothing."""
        meta = body["metadata"]
        failed = TrainingJobStatus(phase="Failed", completion_time=status.timestamp(now))
        status.set_condition(failed, "Failed", True, INVALID_SPEC, message, now)
        if (body.get("status") or {}).get("phase") != "Failed":
            self.kube.patch_status(meta["namespace"], meta["name"], failed.wire())
            self.kube.post_event(body, status.Event("Warning", INVALID_SPEC, message))

    def resync_forever(self) -> None:
        """Reconcile every known job periodically: deadlines, timeouts, TTL, progress."""
        while not self._stop.wait(self.settings.resync_seconds):
            for namespace, name in sorted(self.known):
                self.request(namespace, name, poll_progress=True)

    def stop(self) -> None:
        self._stop.set()
        self.pods.stop()
        with self._timers_lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        self._requests.stop()


def _is_replica(pod: dict) -> bool:
    labels = pod.get("metadata", {}).get("labels") or {}
    return plan.LABEL_TYPE in labels and plan.LABEL_INDEX in labels
