"""Fixtures shared by the e2e and reliability suites: one operator per module, host dirs.

Imported by tests/e2e/conftest.py and tests/reliability/conftest.py, so every
module gets them without re-exporting them itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.operator_fixture import RunningOperator, operator_session
from tests.harness.cluster import Cluster
from tests.harness.kubelet import TestKubelet


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, kubelet: TestKubelet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    yield from operator_session(cluster, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module")
def host_dir() -> Iterator[Path]:
    """A host directory for hostPath volumes, outside /tmp: pods get their own /tmp."""
    path = Path(tempfile.mkdtemp(prefix="kubetrain-e2e-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def digits_host_dir(host_dir: Path) -> Path:
    """Digits TFRecords in a host directory, mounted into pods with a hostPath volume."""
    from kubetrain_trainer import datasets

    return datasets.digits(host_dir / "digits")


@pytest.fixture
def out_dir(host_dir: Path, request: pytest.FixtureRequest) -> Path:
    """Where a test's job writes its model (a hostPath volume at /out)."""
    path = host_dir / request.node.name
    path.mkdir()
    return path
