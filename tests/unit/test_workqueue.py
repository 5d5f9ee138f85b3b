"""workqueue.py with real threads: one run at a time per key, bursts fold into one
more run, no key starves another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubetrain_operator.workqueue import WorkQueue

WAIT = 10.0


class Work:
    """Records its runs; runs of keys in `hold` block until `release` is set."""

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


@pytest.fixture
def work() -> Work:
    return Work()


@pytest.fixture
def queue(work: Work) -> Iterator[WorkQueue[str]]:
    q: WorkQueue[str] = WorkQueue(work, workers=4, name="test")
    yield q
    work.release.set()
    q.stop()


@pytest.fixture
def serial(work: Work) -> Iterator[WorkQueue[str]]:
    """One worker, so the order of runs is the order the queue hands keys out."""
    q: WorkQueue[str] = WorkQueue(work, workers=1, name="test")
    yield q
    work.release.set()
    q.stop()


def _started(work: Work) -> None:
    assert work.started.acquire(timeout=WAIT)


def test_a_lone_request_runs_once(work: Work, queue: WorkQueue[str]) -> None:
    queue.request("a")
    assert queue.idle(WAIT)
    assert work.runs == [("a", False)]


def test_a_burst_during_a_run_folds_into_one_more_run(work: Work, queue: WorkQueue[str]) -> None:
    work.hold.add("a")
    queue.request("a")
    _started(work)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: queue.request("a"), range(500)))  # none of them waits
    work.release.set()
    assert queue.idle(WAIT)
    assert work.runs == [("a", False), ("a", False)]
    assert not work.overlapped


def test_requests_waiting_in_line_fold_too(work: Work, serial: WorkQueue[str]) -> None:
    work.hold.add("x")
    serial.request("x")
    _started(work)
    for _ in range(100):
        serial.request("a")
    work.release.set()
    assert serial.idle(WAIT)
    assert work.runs == [("x", False), ("a", False)]


def test_flags_of_folded_requests_are_kept(work: Work, queue: WorkQueue[str]) -> None:
    work.hold.add("a")
    queue.request("a")
    _started(work)
    queue.request("a", flag=True)
    queue.request("a", flag=False)
    work.release.set()
    assert queue.idle(WAIT)
    assert work.runs == [("a", False), ("a", True)]


def test_keys_run_side_by_side(work: Work, queue: WorkQueue[str]) -> None:
    work.hold.add("a")
    queue.request("a")
    _started(work)
    queue.request("b")
    _started(work)  # b runs while a is still held
    assert ("b", False) in work.runs
    work.release.set()
    assert queue.idle(WAIT)


def test_a_busy_key_goes_to_the_back_of_the_line(work: Work, serial: WorkQueue[str]) -> None:
    """With one worker, a job that keeps getting events does not starve a new one."""
    work.hold.add("busy")
    serial.request("busy")
    _started(work)
    serial.request("busy")
    serial.request("new")
    work.hold.clear()
    work.release.set()
    assert serial.idle(WAIT)
    assert [k for k, _ in work.runs] == ["busy", "new", "busy"]


def test_a_failed_run_keeps_the_worker_and_the_next_request_runs(
    work: Work, queue: WorkQueue[str], caplog: pytest.LogCaptureFixture
) -> None:
    work.fail.add("a")
    queue.request("a")
    assert queue.idle(WAIT)
    assert "a failed" in caplog.text
    work.fail.clear()
    queue.request("a")
    assert queue.idle(WAIT)
    assert work.runs == [("a", False), ("a", False)]


def test_discard_drops_a_waiting_request(work: Work, serial: WorkQueue[str]) -> None:
    work.hold.add("x")
    serial.request("x")
    _started(work)
    serial.request("a")
    serial.request("x")
    serial.discard("a")
    serial.discard("x")
    work.release.set()
    assert serial.idle(WAIT)
    assert work.runs == [("x", False)]


def test_many_threads_many_keys_never_overlap_and_lose_no_request(work: Work) -> None:
    """Every request is followed by a run of its key that started after it."""
    lock = threading.Lock()
    clock = {"now": 0}
    asked: dict[str, int] = {}
    last_start: dict[str, int] = {}

    def run(key: str, flag: bool) -> None:
        with lock:
            clock["now"] += 1
            last_start[key] = clock["now"]
        work(key, flag)

    queue: WorkQueue[str] = WorkQueue(run, workers=4, name="test")

    def ask(i: int) -> None:
        key = f"k{i % 8}"
        with lock:
            clock["now"] += 1
            asked[key] = clock["now"]
        queue.request(key)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(ask, range(3000)))
    assert queue.idle(WAIT)
    queue.stop()
    assert not work.overlapped
    assert all(last_start[key] > stamp for key, stamp in asked.items())
