"""Test harness: a real Kubernetes control plane built from pinned Go modules."""

from .cluster import Cluster, ClusterError, KubectlError, find_tools, start_cluster

__all__ = ["Cluster", "ClusterError", "KubectlError", "find_tools", "start_cluster"]
