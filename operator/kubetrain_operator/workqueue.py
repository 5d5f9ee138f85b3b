"""Reconcile requests, coalesced per job and served in order by a few worker threads.

A 512-worker job brings thousands of pod events. Reconciling once per event
queued a full reconcile (GET the job, LIST 512 pods) behind the job's lock for
each of them, and the backlog kept the operator busy for minutes after the
job was Running. Reconcile is level-based, so one run after a burst sees
everything the burst changed: a job waits in the queue at most once, a request
made while it runs queues it once more, and it never runs on two threads at
once (client-go's workqueue, in small). Handlers only enqueue, so kopf's
threads are never held, and a busy job goes to the back of the line instead of
starving new jobs of workers.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)


class WorkQueue(Generic[K]):
    """Runs `work(key, flag)` for requested keys on `workers` threads.

    Flags of coalesced requests are OR-ed, so a request that asked for more
    (the resync's progress poll) is never lost. `work` raising is logged; the
    next request (the resync loop's, at worst) tries again.
    """

    def __init__(self, work: Callable[[K, bool], None], workers: int, name: str) -> None:
        self._work = work
        self._name = name
        self._cond = threading.Condition()
        self._order: deque[K] = deque()  # keys waiting, each once, not running
        self._pending: dict[K, bool] = {}  # requested and not yet started
        self._running: set[K] = set()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def request(self, key: K, flag: bool = False) -> None:
        """Ask for a run of `key`; returns at once."""
        with self._cond:
            if key in self._pending:
                self._pending[key] = self._pending[key] or flag
                return
            self._pending[key] = flag
            if key not in self._running:  # else it queues when its run ends
                self._order.append(key)
                self._cond.notify()

    def discard(self, key: K) -> None:
        """Drop a waiting request (the job is gone); a run in progress finishes."""
        with self._cond:
            if self._pending.pop(key, None) is not None and key not in self._running:
                self._order.remove(key)

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._running, timeout)

    def stop(self) -> None:
        """Workers exit after their current run; waiting requests are dropped."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._order or self._stopped)
                if self._stopped:
                    return
                key = self._order.popleft()
                flag = self._pending.pop(key)
                self._running.add(key)
            try:
                self._work(key, flag)
            except Exception:
                log.exception("%s: %s failed; the next request retries", self._name, key)
            finally:
                with self._cond:
                    self._running.discard(key)
                    if key in self._pending:
                        self._order.append(key)
                    self._cond.notify_all()
