"""Finding input files and splitting them across workers.

Sharding by file keeps every worker's reads sequential and disjoint; when
there are fewer files than workers, each worker reads every file and keeps
every n-th batch instead (TF's AutoShardPolicy.DATA, done explicitly).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass


class DataError(Exception):
    """The input cannot be read as specified (missing path, bad records)."""


def list_files(uri: str) -> list[str]:
    """Files named by a file, a directory or a glob, sorted for determinism.

    Raises:
        DataError: nothing matches `uri`.
    """
    pattern = os.path.join(uri, "*") if os.path.isdir(uri) else uri
    files = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    files = [f for f in files if not os.path.basename(f).startswith((".", "_"))]
    if not files:
        raise DataError(f"no input files match {uri!r}")
    return files


@dataclass(frozen=True)
class Shard:
    """The part of the input one worker reads."""

    files: list[str]
    # Keep every `stride`-th batch starting at `offset` (1/0 = keep all).
    stride: int = 1
    offset: int = 0


def shard(files: list[str], num_workers: int, worker_index: int) -> Shard:
    """This worker's files, or all files and a batch stride when files are few."""
    if num_workers <= 1:
        return Shard(files)
    if len(files) >= num_workers:
        return Shard(files[worker_index::num_workers])
    return Shard(files, stride=num_workers, offset=worker_index)
