"""status.reconcile: phases, conditions, restarts, cleanup, timeouts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubetrain_operator import status as st
from kubetrain_operator.api import ReplicaType, TrainingJob
from kubetrain_operator.status import PodView, reconcile

from .conftest import make_job

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def pod(name: str, phase: str = "Running", code: int | None = None, **kw: Any) -> PodView:
    _, rtype, index = name.rsplit("-", 2)
    defaults = {"created": NOW - timedelta(seconds=5), "scheduled": phase != "Pending"}
    return PodView(
        name=name,
        type=ReplicaType(rtype),
        index=int(index),
        phase=phase,
        exit_code=code,
        **{**defaults, **kw},
    )


def running(job: TrainingJob) -> list[PodView]:
    from kubetrain_operator.plan import replicas

    return [pod(r.name) for r in replicas(job)]


def step(job: TrainingJob, pods: list[PodView], now: datetime = NOW) -> st.Actions:
    """Reconcile and store the new status on the job, as the operator does."""
    actions = reconcile(job, pods, now, generation=1)
    job.status = actions.status
    return actions


def cond(job: TrainingJob, ctype: str) -> str | None:
    assert job.status is not None
    return next((c.status for c in job.status.conditions if c.type == ctype), None)


def test_new_job_creates_every_replica() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 2}})
    actions = step(job, [])
    assert actions.create == ["mnist-chief-0", "mnist-worker-0", "mnist-worker-1"]
    assert actions.status.phase == "Created"
    assert cond(job, "Created") == "True"
    assert actions.status.start_time and actions.status.observed_generation == 1
    assert [e.reason for e in actions.events] == [st.CREATED]


def test_all_running_is_running_and_counts_replicas() -> None:
    job = make_job()
    actions = step(job, running(job))
    assert actions.create == [] and actions.status.phase == "Running"
    assert actions.status.replica_statuses["worker"].active == 2
    assert cond(job, "Running") == "True"


def test_worker_zero_success_ends_job_and_cleans_running_pods() -> None:
    job = make_job(replicas={"worker": {"replicas": 3}, "evaluator": {}})
    step(job, running(job))
    pods = [
        pod("mnist-worker-0", "Succeeded", 0),
        pod("mnist-worker-1"),
        pod("mnist-worker-2"),
        pod("mnist-evaluator-0"),
    ]
    actions = step(job, pods)
    assert actions.status.phase == "Succeeded"
    assert "worker 0 (no chief) mnist-worker-0 succeeded" in job.status.conditions[-1].message
    assert actions.delete == ["mnist-worker-1", "mnist-worker-2", "mnist-evaluator-0"]
    assert actions.status.completion_time == st.timestamp(NOW)
    assert cond(job, "Running") == "False"


def test_clean_pod_policy_none_still_stops_ps_and_evaluator() -> None:
    job = make_job(
        replicas={"chief": {}, "worker": {"replicas": 1}, "ps": {"replicas": 1}, "evaluator": {}},
        runPolicy={"cleanPodPolicy": "None"},
    )
    pods = [
        pod("mnist-chief-0", "Succeeded", 0),
        pod("mnist-worker-0"),
        pod("mnist-ps-0"),
        pod("mnist-evaluator-0"),
    ]
    assert step(job, pods).delete == ["mnist-ps-0", "mnist-evaluator-0"]


def test_all_workers_policy_waits_for_every_worker() -> None:
    job = make_job(successPolicy="allWorkers")
    assert (
        step(job, [pod("mnist-worker-0", "Succeeded", 0), pod("mnist-worker-1")]).status.phase
        == "Running"
    )
    done = step(job, [pod("mnist-worker-0", "Succeeded", 0), pod("mnist-worker-1", "Succeeded", 0)])
    assert done.status.phase == "Succeeded"


def test_worker_failure_restarts_the_whole_group_once() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 2}, "evaluator": {}})
    step(job, running(job))
    pods = [
        pod("mnist-chief-0", "Failed", 138),
        pod("mnist-worker-0"),
        pod("mnist-worker-1", "Failed", 138),
        pod("mnist-evaluator-0"),
    ]
    actions = step(job, pods)
    assert actions.status.phase == "Restarting" and actions.status.restart_count == 1
    assert actions.delete == ["mnist-chief-0", "mnist-worker-0", "mnist-worker-1"]
    assert "mnist-chief-0 failed with exit code 138" in actions.events[-1].message
    # The deleted pods are terminating: nothing is counted twice, nothing created yet.
    terminating = [pod(p.name, p.phase, p.exit_code, terminating=True) for p in pods[:3]]
    again = step(job, [*terminating, pod("mnist-evaluator-0")])
    assert again.status.restart_count == 1 and again.create == []
    # Once they are gone and the 10 s back-off has passed they are recreated,
    # and the job runs again.
    waiting = step(job, [pod("mnist-evaluator-0")])
    assert waiting.create == [] and waiting.requeue_after == 10
    later = NOW + timedelta(seconds=10)
    recreated = step(job, [pod("mnist-evaluator-0")], later)
    assert recreated.create == ["mnist-chief-0", "mnist-worker-0", "mnist-worker-1"]
    assert recreated.requeue_after is None
    assert step(job, running(job), later).status.phase == "Running"
    assert cond(job, "Restarting") == "False"


def test_ps_strategy_replaces_only_the_failed_worker() -> None:
    job = make_job(replicas={"chief": {}, "worker": {"replicas": 2}, "ps": {"replicas": 1}})
    pods = [
        pod("mnist-chief-0"),
        pod("mnist-worker-0", "Failed", 1),
        pod("mnist-worker-1"),
        pod("mnist-ps-0"),
    ]
    assert step(job, pods).delete == ["mnist-worker-0"]


def test_backoff_limit_exhausted_fails() -> None:
    job = make_job(runPolicy={"backoffLimit": 1})
    step(job, [pod("mnist-worker-0", "Failed", 1), pod("mnist-worker-1")])
    actions = step(job, [pod("mnist-worker-0", "Failed", 1), pod("mnist-worker-1")])
    assert actions.status.phase == "Failed"
    assert actions.events[-1].reason == st.BACKOFF_LIMIT
    assert "backoffLimit 1 reached" in actions.events[-1].message
    assert actions.delete == ["mnist-worker-1"]


def test_exit_code_policy_permanent_code_fails_at_once() -> None:
    job = make_job(runPolicy={"restartPolicy": "ExitCode"})
    actions = step(job, [pod("mnist-worker-0"), pod("mnist-worker-1", "Failed", 2, reason="Error")])
    assert actions.status.phase == "Failed" and actions.status.restart_count == 0
    assert actions.events[-1].reason == st.FAILED_POD
    assert "mnist-worker-1 failed with exit code 2 (Error)" in actions.events[-1].message
    assert "1-127 are permanent" in actions.events[-1].message


def test_never_policy_fails_naming_the_pod() -> None:
    job = make_job(runPolicy={"restartPolicy": "Never"})
    actions = step(job, [pod("mnist-worker-0", "Failed", 137), pod("mnist-worker-1")])
    assert actions.status.phase == "Failed"
    assert "mnist-worker-0 failed with exit code 137; restartPolicy Never" in (
        actions.events[-1].message
    )


def test_evaluator_failure_does_not_fail_training() -> None:
    job = make_job(replicas={"worker": {"replicas": 1}, "evaluator": {}})
    actions = step(job, [pod("mnist-worker-0"), pod("mnist-evaluator-0", "Failed", 1)])
    assert actions.status.phase == "Running"
    assert actions.status.replica_statuses["evaluator"].failed == 1


def test_unschedulable_gpu_request_fails_after_timeout() -> None:
    job = make_job(runPolicy={"schedulingTimeoutSeconds": 60})
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    pending = [
        pod(
            f"mnist-worker-{i}",
            "Pending",
            created=NOW - timedelta(seconds=30),
            scheduler_message=message,
        )
        for i in range(2)
    ]
    assert step(job, pending).status.phase == "Created"
    later = step(job, pending, NOW + timedelta(seconds=31))
    assert later.status.phase == "Failed"
    assert later.events[-1].reason == st.UNSCHEDULABLE
    assert "Insufficient nvidia.com/gpu" in later.events[-1].message
    assert later.delete == ["mnist-worker-0", "mnist-worker-1"]


def test_active_deadline_fails_running_job() -> None:
    job = make_job(runPolicy={"activeDeadlineSeconds": 100})
    step(job, running(job))
    late = step(job, running(job), NOW + timedelta(seconds=101))
    assert late.status.phase == "Failed" and late.events[-1].reason == st.DEADLINE
    assert late.delete == ["mnist-worker-0", "mnist-worker-1"]


def test_suspend_deletes_pods_and_resume_recreates() -> None:
    job = make_job()
    step(job, running(job))
    job.spec.run_policy.suspend = True
    held = step(job, running(job))
    assert held.status.phase == "Suspended" and held.delete == ["mnist-worker-0", "mnist-worker-1"]
    assert cond(job, "Suspended") == "True" and held.status.start_time is None
    job.spec.run_policy.suspend = False
    resumed = step(job, [])
    assert resumed.create == ["mnist-worker-0", "mnist-worker-1"]
    assert cond(job, "Suspended") == "False"


def test_ttl_deletes_finished_job() -> None:
    job = make_job(runPolicy={"ttlSecondsAfterFinished": 60})
    step(job, [pod("mnist-worker-0", "Succeeded", 0), pod("mnist-worker-1", "Succeeded", 0)])
    assert not step(job, [], NOW + timedelta(seconds=59)).delete_job
    assert step(job, [], NOW + timedelta(seconds=60)).delete_job


def test_finished_job_stays_finished() -> None:
    job = make_job()
    step(job, [pod("mnist-worker-0", "Succeeded", 0), pod("mnist-worker-1")])
    actions = step(job, [pod("mnist-worker-0", "Succeeded", 0)])
    assert actions.status.phase == "Succeeded" and actions.create == [] and not actions.events


def test_pod_view_reads_exit_code_and_scheduler_message() -> None:
    raw = {
        "metadata": {
            "name": "mnist-worker-1",
            "labels": {"kubetrain.io/replica-type": "worker", "kubetrain.io/replica-index": "1"},
            "creationTimestamp": "2026-11-25T12:00:00Z",
        },
        "spec": {},
        "status": {
            "phase": "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True", "message": ""}],
            "containerStatuses": [
                {
                    "name": "tensorflow",
                    "state": {"terminated": {"exitCode": 138, "reason": "Error"}},
                }
            ],
        },
    }
    view = st.pod_view(raw)
    assert (view.type, view.index, view.exit_code, view.reason) == (
        ReplicaType.WORKER,
        1,
        138,
        "Error",
    )
    assert view.scheduled and view.created == NOW


def test_termination_message_reaches_the_condition() -> None:
    job = make_job(runPolicy={"restartPolicy": "ExitCode"})
    message = "Traceback ...\nspec.data.train: no input files match '/data/x'\n"
    actions = step(
        job, [pod("mnist-worker-0"), pod("mnist-worker-1", "Failed", 2, message=message)]
    )
    assert "exit code 2: spec.data.train: no input files match '/data/x'" in (
        actions.events[-1].message
    )


def crash(job: TrainingJob, now: datetime) -> st.Actions:
    """Worker 1 fails (retryable) at `now`, then its group is gone."""
    step(job, [pod("mnist-worker-0"), pod("mnist-worker-1", "Failed", 138)], now)
    return step(job, [], now)


def test_restart_waits_out_a_doubling_back_off_recorded_in_status() -> None:
    job = make_job(runPolicy={"backoffLimit": 5, "restartBackoffSeconds": 2})
    t = NOW
    for restart, delay in enumerate([2, 4, 8], start=1):
        waiting = crash(job, t)
        assert waiting.status.restart_count == restart and waiting.status.phase == "Restarting"
        assert waiting.status.last_restart_time == st.timestamp(t)
        assert waiting.create == [] and waiting.requeue_after == delay
        message = next(c.message for c in job.status.conditions if c.type == "Restarting")
        stamp = st.timestamp(t + timedelta(seconds=delay))
        assert f"new pods after a {delay}s back-off, at {stamp}" in message
        # Events during the wait (pods vanishing, resync) create nothing early.
        almost = step(job, [], t + timedelta(seconds=delay - 1))
        assert almost.create == [] and almost.requeue_after == 1
        assert almost.status.phase == "Restarting"
        t += timedelta(seconds=delay)
        assert step(job, [], t).create == ["mnist-worker-0", "mnist-worker-1"]
        t += timedelta(seconds=30)
        assert step(job, running(job), t).status.phase == "Running"


def test_back_off_survives_an_operator_restart() -> None:
    """The status is the operator's only memory: a fresh reconcile of the
    stored job keeps waiting for what is left of the back-off."""
    job = make_job()
    crash(job, NOW)
    stored = TrainingJob.model_validate(job.wire())
    assert stored.status is not None and stored.status.last_restart_time == st.timestamp(NOW)
    resumed = reconcile(stored, [], NOW + timedelta(seconds=4), generation=1)
    assert resumed.create == [] and resumed.requeue_after == 6


def test_zero_back_off_restarts_at_once() -> None:
    job = make_job(runPolicy={"restartBackoffSeconds": 0})
    actions = crash(job, NOW)
    assert actions.create == ["mnist-worker-0", "mnist-worker-1"]
    assert actions.requeue_after is None
    assert "new pods now" in next(
        c.message for c in job.status.conditions if c.type == "Restarting"
    )


def test_deadline_and_suspend_still_apply_during_a_back_off() -> None:
    job = make_job(
        runPolicy={
            "activeDeadlineSeconds": 60,
            "restartBackoffSeconds": 100,
            "maxRestartBackoffSeconds": 100,
        }
    )
    crash(job, NOW)
    late = step(job, [], NOW + timedelta(seconds=61))
    assert late.status.phase == "Failed" and late.events[-1].reason == st.DEADLINE

    job = make_job(runPolicy={"restartBackoffSeconds": 100, "maxRestartBackoffSeconds": 100})
    crash(job, NOW)
    job.spec.run_policy.suspend = True
    held = step(job, [], NOW + timedelta(seconds=1))
    assert held.status.phase == "Suspended" and held.requeue_after is None
    job.spec.run_policy.suspend = False
    resumed = step(job, [], NOW + timedelta(seconds=2))
    assert resumed.create == ["mnist-worker-0", "mnist-worker-1"]
    assert resumed.status.restart_count == 1


def test_backoff_limit_still_ends_a_crash_loop_with_back_off() -> None:
    job = make_job(runPolicy={"backoffLimit": 2})
    t = NOW
    for delay in (10, 20):
        crash(job, t)
        t += timedelta(seconds=delay)
        step(job, [], t)
    failed = step(job, [pod("mnist-worker-0"), pod("mnist-worker-1", "Failed", 138)], t)
    assert failed.status.phase == "Failed" and failed.events[-1].reason == st.BACKOFF_LIMIT
    assert failed.status.restart_count == 2 and failed.requeue_after is None


def test_success_takes_the_last_epoch_from_the_reporters_termination_message() -> None:
    """A short job can end between two progress polls: the trainer's final
    snapshot (JSON in the termination message) still reaches status.progress."""
    job = make_job()
    step(job, running(job))
    final = '{"epoch": 3, "epochs": 3, "step": 90, "metrics": {"val_accuracy": 0.97}}'
    actions = step(
        job, [pod("mnist-worker-0", "Succeeded", 0, message=final), pod("mnist-worker-1")]
    )
    assert actions.status.phase == "Succeeded"
    progress = actions.status.progress
    assert progress is not None and (progress.epoch, progress.epochs) == (3, 3)
    assert progress.metrics == {"val_accuracy": 0.97}


def test_a_reporter_message_that_is_not_progress_leaves_progress_alone() -> None:
    job = make_job()
    actions = step(job, [pod("mnist-worker-0", "Succeeded", 0, message="{not json")])
    assert actions.status.phase == "Succeeded" and actions.status.progress is None
    assert st.final_progress(pod("mnist-worker-0", "Running", message='{"epoch": 1}'), NOW) is None
