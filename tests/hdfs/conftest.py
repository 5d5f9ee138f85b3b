"""Fixtures for tests against a real HDFS (tests/harness/hdfs.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness lives in tests/harness; make `tests` importable however pytest was invoked.
_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.harness.hdfs import MiniHdfs, find_hdfs  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build the HDFS classpath before any test starts, outside every test's timeout."""
    if config.option.collectonly:
        return
    wanted = {"hdfs", "secure_hdfs"}
    if any(wanted & set(getattr(item, "fixturenames", ())) for item in items):
        find_hdfs()


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniHdfs]:
    """One HDFS for the session (~5 s to start); tests isolate by directory (`hdfs_dir`)."""
    with MiniHdfs(tmp_path_factory.mktemp("minihdfs")) as cluster:
        print(f"\nHDFS ready in {cluster.startup_seconds:.1f}s at {cluster.url}")
        yield cluster


@pytest.fixture
def hdfs_dir(hdfs: MiniHdfs) -> str:
    """A fresh directory URI on the session's HDFS for one test."""
    return f"{hdfs.url}/tests/{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def hdfs_digits(hdfs: MiniHdfs, tmp_path_factory: pytest.TempPathFactory) -> str:
    """scikit-learn's digits as TFRecord shards in HDFS (4 train, 2 validation)."""
    return upload_digits(f"{hdfs.url}/datasets/digits", tmp_path_factory)


def upload_digits(uri: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Write digits' TFRecord shards locally and copy them to `uri` (train/, validation/)."""
    from kubetrain_trainer import datasets
    from kubetrain_trainer.data import fs

    local = datasets.digits(tmp_path_factory.mktemp("digits"))
    fs.copy_tree(str(local), uri)
    return uri
