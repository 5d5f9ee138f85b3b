"""`python -m kubetrain_operator`: run the operator with kopf.

Watches KUBETRAIN_NAMESPACES (comma-separated) or the whole cluster, and
serves liveness on KUBETRAIN_HEALTH_ADDRESS (default :8081/healthz).
"""

from __future__ import annotations

import os

import kopf

from kubetrain_operator import handlers  # noqa: F401 - registers the handlers
from kubetrain_operator.settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings.from_env()
    kopf.configure(verbose=os.environ.get("KUBETRAIN_VERBOSE") == "1")
    kopf.run(
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        liveness_endpoint=os.environ.get("KUBETRAIN_HEALTH_ADDRESS", "http://0.0.0.0:8081/healthz"),
    )


if __name__ == "__main__":
    main()
