"""Job pods in memory, kept current by one watch per scope (the cluster or each namespace).

A reconcile used to LIST its job's pods: 17 MB of JSON to parse at 512
workers (40% of the operator's GIL time), and at 1,000 jobs each label
selector made the apiserver filter every pod. The watch parses each pod
event once and the reconcile reads the job's pods from here.

What keeps the reads safe (client-go's informer and expectations, in small):
* until a scope's first LIST is in, `pods()` LISTs from the apiserver, so a
  restarted operator never takes an empty cache for "pods missing";
* a relist (start, 410 Gone) replaces the scope's pods whole, which drops
  pods deleted while no watch ran;
* pods the operator creates or deletes are entered at once (`creating`,
  `deleted`), so the reconcile that runs before the watch event comes
  neither creates them again nor counts a deleted failed pod twice; the
  watch's own view replaces those entries when it arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kubetrain_operator import kube, plan

log = logging.getLogger(__name__)
Key = tuple[str, str]  # namespace, job name
WATCH_SECONDS = 270
BACKOFFS = (1, 2, 5, 10)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def slim(pod: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile reads of a pod (status.pod_view, progress polling):
    the spec of a 512-worker job's pod is most of its 33 KB."""
    meta = {k: v for k, v in pod["metadata"].items() if k != "managedFields"}
    spec = {"nodeName": node} if (node := (pod.get("spec") or {}).get("nodeName")) else {}
    return {"metadata": meta, "spec": spec, "status": pod.get("status") or {}}


def _key(pod: dict[str, Any]) -> tuple[Key, str] | None:
    meta = pod["metadata"]
    job = (meta.get("labels") or {}).get(plan.LABEL_JOB)
    return None if job is None else ((meta["namespace"], job), meta["name"])


class PodCache:
    """Pods by job, from a LIST then a watch per scope; `on_change(namespace,
    job)` is called (on the watch thread) after each change to a job's pods."""

    def __init__(
        self,
        client: kube.Kube,
        namespaces: tuple[str, ...],
        on_change: Callable[[str, str], None],
    ) -> None:
        self._kube = client
        self._scopes: tuple[str | None, ...] = namespaces or (None,)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._jobs: dict[Key, dict[str, dict[str, Any]]] = {}
        self._synced: set[str | None] = set()
        self._stop = threading.Event()

    def start(self) -> None:
        for scope in self._scopes:
            name = f"pods-{scope or 'cluster'}"
            threading.Thread(target=self._run, args=(scope,), name=name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def synced(self, namespace: str) -> bool:
        with self._lock:
            return None in self._synced or namespace in self._synced

    def pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        """The job's pods: from memory once the scope is listed, else a LIST."""
        with self._lock:
            if None in self._synced or namespace in self._synced:
                return list(self._jobs.get((namespace, job), {}).values())
        return self._kube.list_pods(namespace, job)

    def creating(self, pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Enter pods about to be created, unless the watch has them already;
        returns the entries, for `forget_created` if the creates fail."""
        entries = []
        with self._lock:
            for pod in pods:
                found = _key(pod)
                if found is None:
                    continue
                (key, name), entry = found, slim(pod)
                if name not in self._jobs.setdefault(key, {}):
                    self._jobs[key][name] = entry
                    entries.append(entry)
        return entries

    def forget_created(self, entries: Iterable[dict[str, Any]]) -> None:
        """Drop entries of `creating` the watch has not replaced: a failed
        create; those that did exist come back with their watch event."""
        with self._lock:
            for entry in entries:
                key, name = _key(entry) or (("", ""), "")
                if self._jobs.get(key, {}).get(name) is entry:
                    del self._jobs[key][name]

    def deleted(self, namespace: str, job: str, names: Iterable[str]) -> None:
        """Mark pods the operator just deleted as terminating, as a LIST would show them."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._lock:
            pods = self._jobs.get((namespace, job), {})
            for name in names:
                pod = pods.get(name)
                if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                    pods[name] = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": now}}

    def _run(self, scope: str | None) -> None:
        """List, then watch from the list's resourceVersion; relist on 410."""
        version: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._relist(scope)
                version = self._watch(scope, version)
                failures = 0
            except Exception as err:  # the apiserver restarts; the watch breaks
                if isinstance(err, Gone) or getattr(err, "status", None) == 410:
                    log.info("pod watch (%s): resourceVersion expired; listing again", scope)
                    version = None
                    continue
                delay = BACKOFFS[min(failures, len(BACKOFFS) - 1)]
                failures += 1
                log.warning("pod watch (%s) failed: %s; again in %ss", scope, err, delay)
                self._stop.wait(delay)

    def _relist(self, scope: str | None) -> str:
        items, version = self._kube.list_all_pods(scope)
        fresh: dict[Key, dict[str, dict[str, Any]]] = {}
        for pod in items:
            found = _key(pod)
            if found is not None:
                fresh.setdefault(found[0], {})[found[1]] = slim(pod)
        with self._lock:
            mine = [k for k in self._jobs if scope is None or k[0] == scope]
            changed = set(mine) | set(fresh)
            for key in mine:
                del self._jobs[key]
            self._jobs.update(fresh)
            self._synced.add(scope)
        for namespace, job in sorted(changed):
            self._on_change(namespace, job)
        return version

    def _watch(self, scope: str | None, version: str) -> str:
        """Apply watch events until the server ends the watch; the last resourceVersion."""
        started = time.monotonic()
        for event in self._kube.watch_pods(scope, version, WATCH_SECONDS):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise RuntimeError(f"watch error: {obj.get('message')}")
            version = obj["metadata"].get("resourceVersion") or version
            if kind == "BOOKMARK":
                continue
            found = _key(obj)
            if found is None:
                continue
            (key, name) = found
            with self._lock:
                pods = self._jobs.setdefault(key, {})
                if kind == "DELETED":
                    pods.pop(name, None)
                    if not pods:
                        del self._jobs[key]
                else:
                    pods[name] = slim(obj)
            self._on_change(*key)
            if self._stop.is_set():
                break
        log.debug("pod watch (%s) ended after %.0fs", scope, time.monotonic() - started)
        return version
