"""Leader election on a coordination.k8s.io Lease, so two operator replicas never both act.

The follower blocks before kopf starts; the leader runs kopf and keeps the
Lease renewed in a background thread. Losing the Lease ends the process at
once (the Deployment restarts it as a follower): acting without the Lease
would risk two operators creating and deleting the same pods.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger(__name__)

LEASE_NAME = "kubetrain-operator"
LEASE_SECONDS = 15
RENEW_DEADLINE_SECONDS = 10
RETRY_SECONDS = 2


def identity() -> str:
    """This replica's name in the Lease: the pod name, else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _lost_lease() -> None:
    log.error("lost the leader lease; exiting so that only one operator acts")
    os._exit(1)


class _FollowerHealth(BaseHTTPRequestHandler):
    """A waiting follower is healthy: its liveness probe must not restart it."""

    def do_GET(self) -> None:
        body = b'{"leader": false}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


def _serve_follower_health(health_url: str) -> ThreadingHTTPServer:
    url = urlparse(health_url)
    server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 8081), _FollowerHealth)
    threading.Thread(target=server.serve_forever, name="follower-health", daemon=True).start()
    return server


def wait_until_leader(namespace: str, health_url: str, name: str = LEASE_NAME) -> None:
    """Block until this process holds the Lease; keep renewing it afterwards.

    While waiting, answer the liveness probe on `health_url`; kopf takes the
    port over once this replica leads.
    """
    leading = threading.Event()
    config = electionconfig.Config(
        LeaseLock(name, namespace, identity()),
        lease_duration=LEASE_SECONDS,
        renew_deadline=RENEW_DEADLINE_SECONDS,
        retry_period=RETRY_SECONDS,
        onstarted_leading=leading.set,
        onstopped_leading=_lost_lease,
    )
    elector = leaderelection.LeaderElection(config)
    threading.Thread(target=elector.run, name="leader-election", daemon=True).start()
    health = _serve_follower_health(health_url)
    log.info("waiting for the leader lease %s/%s as %s", namespace, name, identity())
    try:
        leading.wait()
    finally:
        health.shutdown()
        health.server_close()
    log.info("leading as %s", identity())
