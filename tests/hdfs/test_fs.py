"""The filesystem seam against a real HDFS: listing, streaming, writing, failing fast."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrain_trainer.data import files, fs, hdfs
from kubetrain_trainer.data.errors import DataError, NotFoundError
from tests.harness.hdfs import MiniHdfs


def _put(uri: str, data: bytes) -> None:
    with fs.filesystem(uri).create(uri) as out:
        out.write(data)


def _read(uri: str) -> bytes:
    return b"".join(fs.filesystem(uri).stream(uri))


def test_lists_a_directory_a_glob_and_a_file_sorted_without_hidden_files(hdfs_dir: str) -> None:
    for name in ("part-1.tfrecord", "part-0.tfrecord", "_SUCCESS", ".part-0.crc", "notes.txt"):
        _put(f"{hdfs_dir}/in/{name}", name.encode())
    fs.filesystem(hdfs_dir).makedirs(f"{hdfs_dir}/in/subdir")
    parts = [f"{hdfs_dir}/in/part-0.tfrecord", f"{hdfs_dir}/in/part-1.tfrecord"]

    everything = [f"{hdfs_dir}/in/notes.txt", *parts]
    assert files.list_files(f"{hdfs_dir}/in") == everything
    assert files.list_files(f"{hdfs_dir}/in/") == everything
    assert files.list_files(f"{hdfs_dir}/in/part-*.tfrecord") == parts
    assert files.list_files(f"{hdfs_dir}/in/part-?.tfrecord") == parts
    assert files.list_files(parts[1]) == [parts[1]]
    info = fs.filesystem(parts[0]).info(parts[0])
    assert info == fs.FileInfo(parts[0], len(b"part-0.tfrecord"), is_dir=False)


def test_streams_writes_and_seeks_large_files(hdfs_dir: str) -> None:
    data = bytes(range(256)) * (5 * 1024 * 1024 // 256 + 7)  # > one 4 MiB chunk
    uri = f"{hdfs_dir}/big.bin"
    _put(uri, data)
    assert _read(uri) == data
    with fs.filesystem(uri).open(uri) as f:
        f.seek(len(data) - 10)
        assert f.read() == data[-10:]
    assert fs.sequential(uri).read() == data


def test_copy_tree_uploads_a_local_directory(hdfs_dir: str, tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "top.txt").write_text("top")
    (tmp_path / "a" / "b" / "deep.txt").write_text("deep")
    fs.copy_tree(str(tmp_path / "a"), f"{hdfs_dir}/a")
    assert _read(f"{hdfs_dir}/a/top.txt") == b"top"
    assert _read(f"{hdfs_dir}/a/b/deep.txt") == b"deep"


def test_rename_is_atomic_and_refuses_to_overwrite(hdfs_dir: str) -> None:
    remote = fs.filesystem(hdfs_dir)
    _put(f"{hdfs_dir}/src/f", b"1")
    _put(f"{hdfs_dir}/dst/f", b"2")
    with pytest.raises(DataError, match="exists"):
        remote.rename(f"{hdfs_dir}/src", f"{hdfs_dir}/dst")
    remote.delete(f"{hdfs_dir}/dst")
    remote.rename(f"{hdfs_dir}/src", f"{hdfs_dir}/dst")
    assert _read(f"{hdfs_dir}/dst/f") == b"1"
    assert remote.info(f"{hdfs_dir}/src") is None


@pytest.mark.parametrize("suffix", ["/missing", "/missing/*.tfrecord", "/missing/part-0"])
def test_a_missing_path_is_a_data_error_naming_it(hdfs_dir: str, suffix: str) -> None:
    uri = hdfs_dir + suffix
    with pytest.raises(DataError, match="no input files match") as err:
        files.list_files(uri)
    assert uri in str(err.value)


def test_reading_a_missing_file_names_it(hdfs_dir: str) -> None:
    uri = f"{hdfs_dir}/gone.bin"
    with pytest.raises(NotFoundError, match=uri):
        _read(uri)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_namenode() -> Iterator[str]:
    """A port that accepts TCP connections and never answers: a hung or black-holed NameNode."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"hdfs://127.0.0.1:{s.getsockname()[1]}"


def test_a_refused_namenode_fails_within_seconds_naming_the_uri() -> None:
    base = f"hdfs://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(hdfs.HdfsUnavailableError, match="cannot reach the HDFS NameNode") as err:
        files.list_files(f"{base}/data/train")
    assert time.monotonic() - started < 30
    assert f"{base}/data/train" in str(err.value)


def test_a_silent_namenode_fails_at_the_deadline_naming_the_uri(
    silent_namenode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hdfs.TIMEOUT_ENV, "2")
    started = time.monotonic()
    with pytest.raises(hdfs.HdfsUnavailableError, match=r"no answer .* in 2s") as err:
        files.list_files(f"{silent_namenode}/data/train")
    assert time.monotonic() - started < 10
    assert f"{silent_namenode}/data/train" in str(err.value)


def test_default_deadline_is_under_30_seconds() -> None:
    assert hdfs.DEFAULT_TIMEOUT < 30


def test_site_config_wins_over_fail_fast_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hdfs-site.xml").write_text(
        "<configuration><property><name>dfs.client.failover.max.attempts</name>"
        "<value>15</value></property></configuration>"
    )
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    assert hdfs.site_config() == {"dfs.client.failover.max.attempts": "15"}


@pytest.mark.timeout(180)
def test_namenode_down_then_back(tmp_path: Path) -> None:
    """Stopping the real NameNode fails the next call fast; after a restart the same client works.

    Its own cluster, so the session's stays up whatever happens here.
    """
    with MiniHdfs(tmp_path) as cluster:
        uri = f"{cluster.url}/data/part-0"
        _put(uri, b"records")
        cluster.stop_namenode()
        started = time.monotonic()
        with pytest.raises(hdfs.HdfsUnavailableError, match=cluster.url):
            files.list_files(uri)
        assert time.monotonic() - started < 30
        cluster.start_namenode()
        assert files.list_files(uri) == [uri]
        assert _read(uri) == b"records"
