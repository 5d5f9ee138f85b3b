"""coalesce.py with real threads: one run at a time per key, bursts fold into one more run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubetrain_operator.coalesce import Coalescer

WAIT = 10.0


class Work:
    """Records its runs; a run of a key in `hold` blocks until released."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, bool]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.hold: set[str] = set()
        self.fail: set[str] = set()
        self.active: dict[str, int] = {}
        self.overlapped = False
        self._lock = threading.Lock()

    def __call__(self, key: str, flag: bool) -> None:
        with self._lock:
            self.runs.append((key, flag))
            self.active[key] = self.active.get(key, 0) + 1
            self.overlapped |= self.active[key] > 1
        self.started.release()
        try:
            if key in self.hold:
                assert self.release.wait(WAIT)
            if key in self.fail:
                raise RuntimeError(f"{key} failed")
        finally:
            with self._lock:
                self.active[key] -= 1


def _start(coalescer: Coalescer[str], work: Work, key: str, flag: bool = False) -> threading.Thread:
    """Request from another thread and wait until its first run is under way."""
    thread = threading.Thread(target=coalescer.request, args=(key, flag))
    thread.start()
    assert work.started.acquire(timeout=WAIT)
    return thread


def test_a_lone_request_runs_once_in_the_caller() -> None:
    work = Work()
    assert Coalescer(work).request("a") is True
    assert work.runs == [("a", False)]


def test_a_burst_during_a_run_folds_into_one_more_run() -> None:
    work = Work()
    work.hold.add("a")
    coalescer = Coalescer(work)
    runner = _start(coalescer, work, "a")
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: coalescer.request("a"), range(200)))
    assert answers == [False] * 200  # nobody waited for the run in progress
    work.release.set()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert work.runs == [("a", False), ("a", False)]
    assert not work.overlapped


def test_flags_of_folded_requests_are_kept() -> None:
    work = Work()
    work.hold.add("a")
    coalescer = Coalescer(work)
    runner = _start(coalescer, work, "a")
    assert coalescer.request("a", flag=True) is False
    assert coalescer.request("a", flag=False) is False
    work.release.set()
    runner.join(WAIT)
    assert work.runs == [("a", False), ("a", True)]


def test_keys_run_side_by_side() -> None:
    work = Work()
    work.hold.add("a")
    coalescer = Coalescer(work)
    runner = _start(coalescer, work, "a")
    assert coalescer.request("b") is True  # not held up by a's run
    work.release.set()
    runner.join(WAIT)
    assert sorted(work.runs) == [("a", False), ("b", False)]


def test_a_failed_run_raises_and_the_next_request_runs_again() -> None:
    work = Work()
    work.fail.add("a")
    coalescer = Coalescer(work)
    with pytest.raises(RuntimeError, match="a failed"):
        coalescer.request("a")
    work.fail.clear()
    assert coalescer.request("a") is True
    assert work.runs == [("a", False), ("a", False)]


def test_discard_drops_a_waiting_request() -> None:
    work = Work()
    work.hold.add("a")
    coalescer = Coalescer(work)
    runner = _start(coalescer, work, "a")
    coalescer.request("a")
    coalescer.discard("a")
    work.release.set()
    runner.join(WAIT)
    assert work.runs == [("a", False)]


def test_many_threads_many_keys_never_overlap_and_lose_no_request() -> None:
    """Every request is followed by a run that started after it was made."""
    work = Work()
    seq = {"n": 0}
    seq_lock = threading.Lock()
    last_start: dict[str, int] = {}

    def tick() -> int:
        with seq_lock:
            seq["n"] += 1
            return seq["n"]

    def run(key: str, flag: bool) -> None:
        last_start[key] = tick()
        work(key, flag)

    coalescer = Coalescer(run)
    asked: dict[str, int] = {}

    def ask(i: int) -> None:
        key = f"k{i % 4}"
        with seq_lock:
            seq["n"] += 1
            asked[key] = seq["n"]
        coalescer.request(key)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(ask, range(2000)))
    assert not work.overlapped
    for key, stamp in asked.items():
        assert last_start[key] > stamp
