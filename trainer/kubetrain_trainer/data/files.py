"""Finding input files and splitting them across workers.

Sharding by file keeps every worker's reads sequential and disjoint; when
there are fewer files than workers, each worker reads every file and keeps
every n-th batch instead (TF's AutoShardPolicy.DATA, done explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetrain_trainer.data import fs
from kubetrain_trainer.data.errors import DataError

__all__ = ["DataError", "Shard", "list_files", "shard"]


def list_files(uri: str) -> list[str]:
    """Files named by a file, a directory or a glob (local or HDFS), sorted for determinism.

    Names starting with '.' or '_' (`_SUCCESS`, Spark's `.crc` files, our
    temporary uploads) are skipped.

    Raises:
        DataError: nothing matches `uri`, or its filesystem cannot be reached.
    """
    filesystem = fs.filesystem(uri)
    if fs.has_magic(uri):
        entries = filesystem.glob(uri)
    else:
        entry = filesystem.info(uri)
        entries = [] if entry is None else filesystem.listdir(uri) if entry.is_dir else [entry]
    files = sorted(
        e.path for e in entries if not e.is_dir and not fs.split(e.path)[1].startswith((".", "_"))
    )
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
