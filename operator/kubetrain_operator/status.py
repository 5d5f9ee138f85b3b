"""Pure reconcile logic: observed pods -> actions and the job's new status.

No I/O: handlers.py lists the pods, calls `reconcile`, and carries out the
returned actions. The order follows Kubeflow's reconcile loop: finished?
clean up; suspended? hold; past the deadline or the scheduling timeout?
fail; a failed replica? restart within backoffLimit or fail; succeeded?
finish; a restart back-off not over yet? wait; else create what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubetrain_operator import plan, policy
from kubetrain_operator.api import (
    Condition,
    Progress,
    ReplicaStatus,
    ReplicaType,
    TrainingJob,
    TrainingJobStatus,
)

# Condition reasons, defined once; each condition change emits an Event with it.
CREATED = "TrainingJobCreated"
RUNNING = "TrainingJobRunning"
SUCCEEDED = "TrainingJobSucceeded"
RESTARTING = "TrainingJobRestarting"
SUSPENDED = "TrainingJobSuspended"
RESUMED = "TrainingJobResumed"
FAILED_POD = "PodFailed"
BACKOFF_LIMIT = "BackoffLimitExceeded"
DEADLINE = "DeadlineExceeded"
UNSCHEDULABLE = "Unschedulable"
FINISHED_PHASES = ("Succeeded", "Failed")
GROUP_TYPES = (ReplicaType.CHIEF, ReplicaType.WORKER, ReplicaType.PS)


@dataclass(frozen=True)
class PodView:
    """What the status logic needs to know about one pod."""

    name: str
    type: ReplicaType
    index: int
    phase: str
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    created: datetime | None = None
    scheduled: bool = False
    scheduler_message: str = ""
    terminating: bool = False

    @property
    def active(self) -> bool:
        return self.phase in ("Pending", "Running", "Unknown") and not self.terminating


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the TrainingJob."""

    type: str
    reason: str
    message: str


@dataclass
class Actions:
    """What the operator must do, and the status to write."""

    status: TrainingJobStatus
    create: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)
    # Reconcile again this many seconds from now: a restart back-off ends then.
    requeue_after: float | None = None


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pod_view(pod: dict[str, Any]) -> PodView:
    """Read a Pod (as the API returns it, camelCase) into a PodView."""
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    labels = meta.get("labels") or {}
    exit_code, reason, termination = None, status.get("reason") or "", ""
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") != plan.CONTAINER:
            continue
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated:
            exit_code = terminated.get("exitCode")
            reason = terminated.get("reason") or reason
            termination = terminated.get("message") or ""
    scheduled, message = bool(pod.get("spec", {}).get("nodeName")), ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            scheduled = scheduled or cond.get("status") == "True"
            message = cond.get("message") or ""
    created = meta.get("creationTimestamp")
    return PodView(
        name=meta["name"],
        type=ReplicaType(labels[plan.LABEL_TYPE]),
        index=int(labels[plan.LABEL_INDEX]),
        phase=status.get("phase") or "Pending",
        exit_code=exit_code,
        reason=reason,
        message=termination,
        created=created if isinstance(created, datetime) else parse_time(created),
        scheduled=scheduled,
        scheduler_message=message,
        terminating=bool(meta.get("deletionTimestamp")),
    )


def last_line(text: str, limit: int = 300) -> str:
    """The last non-empty line of a termination message: the trainer's error,
    or the last log line when the message is a log tail."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def set_condition(
    status: TrainingJobStatus, ctype: str, value: bool, reason: str, message: str, now: datetime
) -> bool:
    """Set one condition; return True when its status changed (an Event is due)."""
    want = "True" if value else "False"
    for cond in status.conditions:
        if cond.type == ctype:
            changed = cond.status != want
            if changed:
                cond.last_transition_time = timestamp(now)
            if changed or value:
                cond.status, cond.reason, cond.message = want, reason, message
            return changed
    if not value:
        return False
    status.conditions.append(
        Condition(
            type=ctype,
            status=want,
            reason=reason,
            message=message,
            last_transition_time=timestamp(now),
        )
    )
    return True


def replica_statuses(job: TrainingJob, pods: list[PodView]) -> dict[str, ReplicaStatus]:
    out = {}
    for rtype, _ in job.spec.replicas.items():
        mine = [p for p in pods if p.type == rtype and not p.terminating]
        out[rtype.value] = ReplicaStatus(
            active=sum(p.active for p in mine),
            succeeded=sum(p.phase == "Succeeded" for p in mine),
            failed=sum(p.phase == "Failed" for p in mine),
        )
    return out


def cleanup(job: TrainingJob, pods: list[PodView]) -> list[str]:
    """Pods to delete once the job finished, per cleanPodPolicy.

    ps and evaluator pods never exit on their own, so they always stop.
    """
    clean = job.spec.run_policy.clean_pod_policy
    live = [p for p in pods if not p.terminating]
    if clean == "All":
        return [p.name for p in live]
    always = (ReplicaType.PS, ReplicaType.EVALUATOR)
    return [p.name for p in live if p.active and (clean == "Running" or p.type in always)]


class _Builder:
    """Accumulates status changes and their events during one reconcile."""

    def __init__(self, job: TrainingJob, now: datetime, generation: int | None) -> None:
        old = job.status or TrainingJobStatus()
        self.status = old.model_copy(deep=True)
        self.status.observed_generation = generation
        self.now = now
        self.actions = Actions(status=self.status)

    def condition(self, ctype: str, value: bool, reason: str, message: str, warn: bool = False):
        if set_condition(self.status, ctype, value, reason, message, self.now) and value:
            self.actions.events.append(Event("Warning" if warn else "Normal", reason, message))

    def finish(self, job: TrainingJob, pods: list[PodView], ok: bool, reason: str, msg: str):
        self.status.phase = "Succeeded" if ok else "Failed"
        self.status.completion_time = self.status.completion_time or timestamp(self.now)
        self.condition("Running", False, reason, msg)
        self.condition("Restarting", False, reason, msg)
        self.condition("Succeeded" if ok else "Failed", True, reason, msg, warn=not ok)
        self.actions.delete = cleanup(job, pods)
        return self.actions


def _success(job: TrainingJob, pods: dict[str, PodView]) -> str | None:
    """The success message when the job's success policy is met, else None."""
    if job.spec.success_policy == "allWorkers":
        group = [
            plan.replica_name(job.metadata.name, t, i)
            for t in (ReplicaType.CHIEF, ReplicaType.WORKER)
            for i in range(job.spec.replicas.count(t))
        ]
        if all(n in pods and pods[n].phase == "Succeeded" for n in group):
            return f"all {len(group)} chief/worker replicas succeeded (successPolicy allWorkers)"
        return None
    reporter = plan.reporter(job)
    pod = pods.get(reporter.name)
    if pod is not None and pod.phase == "Succeeded":
        who = "chief" if reporter.type == ReplicaType.CHIEF else "worker 0 (no chief)"
        return f"{who} {reporter.name} succeeded (successPolicy chief)"
    return None


def _unschedulable(job: TrainingJob, pods: list[PodView], now: datetime) -> PodView | None:
    timeout = timedelta(seconds=job.spec.run_policy.scheduling_timeout_seconds)
    waiting = [p for p in pods if p.phase == "Pending" and not p.scheduled and not p.terminating]
    return next((p for p in waiting if p.created and now - p.created >= timeout), None)


def _restart_group(job: TrainingJob, failed: PodView, pods: list[PodView]) -> list[str]:
    """Pods to delete for a restart.

    Under synchronous strategies one dead worker makes the others fail within
    seconds, so the whole group restarts (one restart, not N). With parameter
    servers a worker can be replaced alone.
    """
    if job.spec.replicas.count(ReplicaType.PS) and failed.type == ReplicaType.WORKER:
        return [failed.name]
    return [p.name for p in pods if p.type in GROUP_TYPES and not p.terminating]


def _failure(job: TrainingJob, pods: list[PodView]) -> PodView | None:
    failed = [
        p
        for p in pods
        if p.phase == "Failed" and not p.terminating and p.type != ReplicaType.EVALUATOR
    ]
    return min(
        failed, key=lambda p: (p.type != ReplicaType.CHIEF, p.type.value, p.index), default=None
    )


def _next_attempt(job: TrainingJob, status: TrainingJobStatus) -> str:
    """When the latest restart's pods will be created, for the condition message."""
    delay = policy.restart_delay(job.spec.run_policy, status.restart_count)
    started = parse_time(status.last_restart_time)
    if not delay or started is None:
        return "; new pods now"
    seconds = int(delay.total_seconds())
    return f"; new pods after a {seconds}s back-off, at {timestamp(started + delay)}"


def reconcile(
    job: TrainingJob, pods: list[PodView], now: datetime, generation: int | None = None
) -> Actions:
    """Decide what to do about a job given its pods; pure.

    Args:
        job: the TrainingJob with its current status.
        pods: every pod labelled with the job's name.
        now: the current time.
        generation: metadata.generation, recorded as observedGeneration.
    """
    b = _Builder(job, now, generation)
    status = b.status
    run = job.spec.run_policy
    by_name = {p.name: p for p in pods}
    status.replica_statuses = replica_statuses(job, pods)

    if status.phase in FINISHED_PHASES:
        b.actions.delete = cleanup(job, pods)
        done = parse_time(status.completion_time)
        ttl = run.ttl_seconds_after_finished
        b.actions.delete_job = (
            ttl is not None and done is not None and now >= done + timedelta(seconds=ttl)
        )
        return b.actions

    if run.suspend:
        # Resuming is a decision already taken later than any failure: no back-off then.
        status.phase, status.start_time, status.last_restart_time = "Suspended", None, None
        b.condition("Running", False, SUSPENDED, "job is suspended")
        b.condition("Suspended", True, SUSPENDED, "spec.runPolicy.suspend is true; pods deleted")
        b.actions.delete = [p.name for p in pods if not p.terminating]
        return b.actions
    b.condition("Suspended", False, RESUMED, "spec.runPolicy.suspend is false")

    status.start_time = status.start_time or timestamp(now)
    started = parse_time(status.start_time)
    deadline = run.active_deadline_seconds
    if deadline and started and now - started >= timedelta(seconds=deadline):
        msg = f"job ran longer than activeDeadlineSeconds={deadline}"
        return b.finish(job, pods, False, DEADLINE, msg)

    message = _success(job, by_name)
    if message is not None:
        status.progress = final_progress(by_name.get(plan.reporter(job).name), now) or (
            status.progress
        )
        return b.finish(job, pods, True, SUCCEEDED, message)

    stuck = _unschedulable(job, pods, now)
    if stuck is not None:
        why = stuck.scheduler_message or "no node accepted it"
        msg = (
            f"{stuck.name} stayed Pending for over {run.scheduling_timeout_seconds}s "
            f"(schedulingTimeoutSeconds): {why}"
        )
        return b.finish(job, pods, False, UNSCHEDULABLE, msg)

    failed = _failure(job, pods)
    if failed is not None:
        code = failed.exit_code if failed.exit_code is not None else 1
        detail = f"{failed.name} failed with exit code {code}" + (
            f" ({failed.reason})" if failed.reason else ""
        )
        if failed.message:
            detail += f": {last_line(failed.message)}"
        if policy.should_restart(run, code, status.restart_count):
            status.restart_count += 1
            status.phase = "Restarting"
            status.last_restart_time = timestamp(now)
            b.actions.delete = _restart_group(job, failed, pods)
            msg = (
                f"{detail}; restart {status.restart_count} of backoffLimit {run.backoff_limit}"
                f"{_next_attempt(job, status)}"
            )
            b.condition("Running", False, RESTARTING, msg)
            b.condition("Restarting", True, RESTARTING, msg, warn=True)
            return b.actions
        if policy.is_retryable(run.restart_policy, code):
            msg = f"{detail}; backoffLimit {run.backoff_limit} reached"
            return b.finish(job, pods, False, BACKOFF_LIMIT, msg)
        rule = {
            "Never": "restartPolicy Never",
            "ExitCode": "restartPolicy ExitCode: codes 1-127 are permanent",
        }.get(run.restart_policy, "")
        return b.finish(job, pods, False, FAILED_POD, f"{detail}; {rule}".rstrip("; "))

    wait = policy.restart_wait(run, status.restart_count, parse_time(status.last_restart_time), now)
    if wait > timedelta(0):
        status.phase = "Restarting"
        b.actions.requeue_after = wait.total_seconds()
        return b.actions

    planned = plan.replicas(job)
    b.actions.create = [r.name for r in planned if r.name not in by_name]
    b.condition("Created", True, CREATED, f"{len(planned)} replicas planned")
    group = [r for r in planned if r.type != ReplicaType.EVALUATOR]
    running = all(
        r.name in by_name
        and by_name[r.name].phase in ("Running", "Succeeded")
        and not by_name[r.name].terminating
        for r in group
    )
    if running:
        status.phase = "Running"
        b.condition("Restarting", False, RUNNING, "all replicas running")
        b.condition("Running", True, RUNNING, f"{len(group)} replicas running")
    elif status.phase != "Restarting":
        status.phase = "Created"
    return b.actions


def final_progress(reporter: PodView | None, now: datetime) -> Progress | None:
    """The progress a succeeded reporter left in its termination message.

    Polls run every resync, so a short job's last epoch would otherwise never
    reach status; the trainer writes its final snapshot there as JSON.
    """
    if reporter is None or reporter.phase != "Succeeded" or not reporter.message.startswith("{"):
        return None
    try:
        snapshot = json.loads(reporter.message)
    except ValueError:
        return None
    return progress_from(snapshot, now) if isinstance(snapshot, dict) else None


def progress_from(snapshot: dict[str, Any] | None, now: datetime) -> Progress | None:
    """The job's status.progress from the reporter's /progress answer."""
    if not snapshot:
        return None
    metrics = {
        k: float(v)
        for k, v in (snapshot.get("metrics") or {}).items()
        if isinstance(v, int | float)
    }
    return Progress(
        epoch=int(snapshot.get("epoch") or 0),
        epochs=snapshot.get("epochs"),
        step=int(snapshot.get("step") or 0),
        loss=snapshot.get("loss"),
        metrics=metrics,
        examples_per_second=snapshot.get("examplesPerSecond"),
        eta_seconds=snapshot.get("etaSeconds"),
        updated_at=snapshot.get("updatedAt") or timestamp(now),
    )
