"""Fixtures for tests that run real TensorFlow processes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as TFRecord shards (4 train, 2 validation)."""
    from kubetrain_trainer import datasets

    return datasets.digits(tmp_path_factory.mktemp("digits"))
