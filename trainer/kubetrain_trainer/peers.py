"""Replicas that serve or watch until the reporter (chief) is done.

Parameter servers, parameter_server workers and the evaluator have no end of
their own. They poll the reporter's `/progress` (the same endpoint the
operator reads) and stop when it says `succeeded`, or when it stops answering
after it said its training `finished`. A reporter that disappears mid-training
is a failure that the runner or the operator handles by restarting the group,
so that case keeps them waiting.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request

from kubetrain_trainer.config import TrainerConfig

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# The reporter keeps its endpoint up this long after success so watchers see it.
LINGER_SECONDS = 3.0


def reporter_url(cfg: TrainerConfig) -> str | None:
    """The reporter's /progress URL: its TF_CONFIG host, the progress port."""
    members = cfg.cluster.get("chief") or cfg.cluster.get("worker")
    if not members or not cfg.progress_port:
        return None
    host = members[0].rsplit(":", 1)[0]
    return f"http://{host}:{cfg.progress_port}/progress"


class ReporterWatch:
    """Tells, one poll at a time, whether the reporter has finished the job."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last_state: str | None = None

    def state(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as resp:
                return str(json.loads(resp.read()).get("state"))
        except (OSError, ValueError):
            return None

    def done(self) -> bool:
        state = self.state()
        if state is None:
            return self.last_state in ("finished", "succeeded")
        self.last_state = state
        return state == "succeeded"


def wait_for_reporter(cfg: TrainerConfig, poll: float = POLL_SECONDS) -> None:
    """Block until the reporter has finished (forever when it cannot be watched)."""
    url = reporter_url(cfg)
    if url is None:
        log.info("no progress port: serving until stopped")
        while True:
            time.sleep(3600)
    watch = ReporterWatch(url)
    while not watch.done():
        time.sleep(poll)
    log.info("the reporter finished (%s): stopping", watch.last_state)
