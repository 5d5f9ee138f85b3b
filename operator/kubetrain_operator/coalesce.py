"""At most one run per key at a time; requests made meanwhile fold into one more run.

A 512-worker job brings thousands of pod events. Reconciling once per event
queued a full reconcile (GET the job, LIST 512 pods) behind the job's lock for
each of them, and the backlog kept the operator busy for minutes after the
job was Running. Reconcile is level-based, so one run after a burst sees
everything the burst changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Coalescer(Generic[K]):
    """Runs `work(key, flag)` for requested keys, never twice at once for one key.

    The caller that finds no run of its key in progress runs `work` until no
    request arrived during the last run; every other caller only leaves its
    request and returns. Flags of folded requests are OR-ed, so a request
    that asked for more (the resync's progress poll) is never lost.
    """

    def __init__(self, work: Callable[[K, bool], None]) -> None:
        self._work = work
        self._guard = threading.Lock()
        self._pending: dict[K, bool] = {}
        self._running: set[K] = set()

    def request(self, key: K, flag: bool = False) -> bool:
        """Ask for a run; True when this caller ran it, False when a run in
        progress will. Raises what `work` raised; requests that arrived during
        the failed run wait for the next request (the resync loop's, at worst)."""
        with self._guard:
            self._pending[key] = self._pending.get(key, False) or flag
            if key in self._running:
                return False
            self._running.add(key)
        try:
            while True:
                with self._guard:
                    if key not in self._pending:
                        self._running.discard(key)
                        return True
                    flag = self._pending.pop(key)
                self._work(key, flag)
        except BaseException:
            with self._guard:
                self._running.discard(key)
            raise

    def discard(self, key: K) -> None:
        """Drop a waiting request (the job is gone); a run in progress finishes."""
        with self._guard:
            self._pending.pop(key, None)
