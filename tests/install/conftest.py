"""Install tests: the Helm chart, the plain manifests, the examples and the Dockerfile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Make `tests` importable however pytest was invoked (as tests/e2e does).
_HERE = Path(__file__).resolve().parent
_REPO_ROOT = _HERE.parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

# The e2e host-dir fixtures, for test_operator_pod.py's digits jobs.
from tests.e2e.fixtures import digits_host_dir, host_dir, out_dir  # noqa: E402
from tests.harness.cluster import find_tools  # noqa: E402

__all__ = ["digits_host_dir", "host_dir", "out_dir"]

#: Test modules and the cluster tools they need (None: all of them).
_TOOLS_NEEDED = {"test_chart.py": ["helm"], "test_install_cluster.py": None}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build helm (and the cluster binaries) before any test starts.

    A cold build takes minutes; doing it here keeps it outside every test's
    pytest-timeout, as tests/e2e/conftest.py does.
    """
    if config.option.collectonly:
        return
    modules = {item.path.name for item in items if item.path.parent == _HERE}
    needed = [_TOOLS_NEEDED[m] for m in modules if m in _TOOLS_NEEDED]
    if None in needed:
        find_tools()
    elif needed:
        find_tools(["helm"])
