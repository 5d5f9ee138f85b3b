"""Prometheus metrics of the operator (served on KUBETRAIN_METRICS_PORT, default 8082)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

JOBS = Gauge("kubetrain_jobs", "TrainingJobs known to the operator, by phase.", ["phase"])
RECONCILE_SECONDS = Histogram(
    "kubetrain_reconcile_seconds",
    "Time to reconcile one job (read, decide, act).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter("kubetrain_reconcile_errors_total", "Reconciles that raised.")
OBJECTS_CREATED = Counter("kubetrain_objects_created_total", "Pods and services created.", ["kind"])
RESTARTS = Counter("kubetrain_restarts_total", "Pod or worker-group restarts.")
API_REQUESTS = Counter(
    "kubetrain_api_requests_total",
    "Requests to the Kubernetes API made by reconciles (kopf's watches not included).",
    ["verb", "resource"],
)


def serve(port: int) -> None:
    """Expose /metrics on `port` (a daemon thread)."""
    start_http_server(port)


def record_phases(phases: list[str]) -> None:
    """Set the per-phase gauge from the phases of every known job."""
    for phase in (
        "Pending",
        "Created",
        "Running",
        "Restarting",
        "Succeeded",
        "Failed",
        "Suspended",
    ):
        JOBS.labels(phase=phase).set(phases.count(phase))
