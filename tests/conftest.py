"""Session fixtures shared by e2e and reliability tests: one real control plane and its kubelets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness lives in tests/harness; make `tests` importable however pytest was invoked.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.harness.cluster import Cluster, find_tools, start_cluster  # noqa: E402
from tests.harness.kubelet import kubelet, kubelets  # noqa: E402, F401 - pytest fixtures

_TOOLS_BIN = pytest.StashKey[Path]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build/locate the cluster tools before any test starts.

    A cold build takes many minutes; doing it here keeps it outside every
    test's pytest-timeout, so the timeouts can stay tight.
    """
    if config.option.collectonly:
        return
    if any("cluster" in getattr(item, "fixturenames", ()) for item in items):
        config.stash[_TOOLS_BIN] = find_tools()


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """One control plane for the whole session, with the project CRDs applied if present.

    Session-scoped because start-up costs seconds; tests isolate themselves by
    namespace or unique names instead.
    """
    bin_dir = pytestconfig.stash.get(_TOOLS_BIN, None) or find_tools()
    with start_cluster(bin_dir) as c:
        print(f"\ncluster ready in {c.startup_seconds:.1f}s at {c.server} ({c.workdir})")
        c.apply_project_crds()
        yield c
