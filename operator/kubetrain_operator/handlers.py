"""kopf handlers: thin, flat, typed; every decision lives in status.py.

Jobs are watched with event handlers (no kopf finalizers or progress
annotations on user objects), pods by the job-name label; a resync loop
covers what no event announces (deadlines, scheduling timeouts, TTL,
progress).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from kubetrain_operator import api, kube, plan
from kubetrain_operator.reconciler import Operator
from kubetrain_operator.settings import OperatorSettings


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """All operator settings in one place."""
    settings.posting.level = logging.WARNING
    # One line per handled watch event drowns the operator's own log.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    settings.execution.max_workers = 16
    kube.load_config()
    operator = Operator(OperatorSettings.from_env(), kube.Kube())
    memo.operator = operator
    threading.Thread(target=operator.resync_forever, name="resync", daemon=True).start()


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.operator.stop()


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
def job_event(event: kopf.RawEvent, name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """Any change to a job (or the initial listing): reconcile it."""
    operator: Operator = memo.operator
    if event["type"] == "DELETED":
        operator.forget(namespace, name)
        return
    operator.remember(namespace, name)
    operator.reconcile(namespace, name)


@kopf.on.event("", "v1", "pods", labels={plan.LABEL_JOB: kopf.PRESENT})
def pod_event(labels: kopf.Labels, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """A replica pod changed: reconcile its job."""
    memo.operator.reconcile(namespace, labels[plan.LABEL_JOB])


@kopf.on.probe(id="jobs")
def jobs_known(memo: kopf.Memo, **_: Any) -> int:
    """Liveness detail: how many jobs the operator tracks."""
    return len(memo.operator.known)
