"""`python -m kubetrain_operator`: run the operator with kopf.

Watches KUBETRAIN_NAMESPACES (comma-separated) or the whole cluster, and
serves liveness on KUBETRAIN_HEALTH_ADDRESS (default :8081/healthz). With
KUBETRAIN_LEADER_ELECTION_NAMESPACE set, it first waits to hold the leader
Lease in that namespace.
"""

from __future__ import annotations

import os

import kopf

from kubetrain_operator import (
    handlers,  # noqa: F401 - registers the handlers
    kube,
    leader,
    metrics,
)
from kubetrain_operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings.from_env()
    kopf.configure(verbose=os.environ.get("KUBETRAIN_VERBOSE") == "1")
    # Before the election, so followers answer the metrics Service's scrapes too.
    metrics.serve(settings.metrics_port)
    health = os.environ.get("KUBETRAIN_HEALTH_ADDRESS", "http://0.0.0.0:8081/healthz")
    if settings.leader_election_namespace:
        kube.load_config()
        leader.wait_until_leader(
            settings.leader_election_namespace, health, settings.leader_election_lease
        )
    kopf.run(
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        liveness_endpoint=health,
    )


if __name__ == "__main__":
    main()
