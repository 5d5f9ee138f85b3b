"""Fixtures for every module here (an operator per module, host dirs for hostPath volumes)."""

from tests.e2e.fixtures import digits_host_dir, host_dir, operator, out_dir

__all__ = ["digits_host_dir", "host_dir", "operator", "out_dir"]
