"""Remote TFRecords read by tf.data's native reader from local copies made one file ahead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf

from kubetrain_trainer.data import copyahead, fs, tfrecord
from kubetrain_trainer.data.errors import DataError
from tests.trainer.replica import DIGITS, run_trainer


def _put_records(uri: str, records: list[bytes], tmp: Path) -> None:
    local = tmp / "staging.tfrecord"
    with tf.io.TFRecordWriter(str(local)) as writer:
        for r in records:
            writer.write(r)
    with local.open("rb") as src, fs.filesystem(uri).create(uri) as out:
        shutil.copyfileobj(src, out)


def _shards(
    hdfs_dir: str, tmp: Path, files: int = 4, rows: int = 50
) -> tuple[list[str], list[bytes]]:
    uris, everything = [], []
    for i in range(files):
        records = [f"file{i}-record{j}".encode() * (j % 7 + 1) for j in range(rows)]
        uri = f"{hdfs_dir}/part-{i:05d}.tfrecord"
        _put_records(uri, records, tmp)
        uris.append(uri)
        everything += records
    return uris, everything


def _on_disk(directory: Path) -> list[Path]:
    """Files under `directory` (os.walk skips directories removed while it looks)."""
    return [Path(root, n) for root, _, names in os.walk(directory) for n in names]


def test_two_passes_read_every_record_in_order_holding_at_most_two_files(
    hdfs_dir: str, tmp_path: Path
) -> None:
    uris, expected = _shards(hdfs_dir, tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ds = copyahead.dataset(uris, tf.data.TFRecordDataset, scratch).repeat(2)

    got, most = [], 0
    for record in ds:
        got.append(record.numpy())
        most = max(most, len(_on_disk(scratch)))

    assert got == expected * 2
    assert 1 <= most <= 2
    # Only the last file of the finished pass remains, until the next pass or exit.
    assert [p.name for p in _on_disk(scratch)] == ["000003-part-00003.tfrecord"]


def test_the_trainer_reads_remote_tfrecords_through_copy_ahead(
    hdfs_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uris, expected = _shards(hdfs_dir, tmp_path, files=3)
    monkeypatch.setenv(copyahead.SCRATCH_DIR_ENV, str(tmp_path / "scratch"))

    got = [r.numpy() for r in tfrecord.dataset(uris, data=None)]  # type: ignore[arg-type]

    assert got == expected
    assert list((tmp_path / "scratch").glob(f"{copyahead.PREFIX}{os.getpid()}-*"))


def test_files_over_the_scratch_budget_are_framed_in_python_instead(
    hdfs_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uris, expected = _shards(hdfs_dir, tmp_path, files=2)
    monkeypatch.setenv(copyahead.SCRATCH_DIR_ENV, str(tmp_path / "scratch"))
    monkeypatch.setenv(copyahead.SCRATCH_BYTES_ENV, "100")

    got = [r.numpy() for r in tfrecord.dataset(uris, data=None)]  # type: ignore[arg-type]

    assert got == expected
    assert not list((tmp_path / "scratch").iterdir())


def test_peak_bytes_is_the_largest_two_adjacent_files() -> None:
    assert copyahead.peak_bytes([]) == 0
    assert copyahead.peak_bytes([7]) == 7
    assert copyahead.peak_bytes([5, 1, 9, 2, 3]) == 11


def test_a_corrupt_record_fails_naming_the_remote_file(hdfs_dir: str, tmp_path: Path) -> None:
    uris, _ = _shards(hdfs_dir, tmp_path, files=2)
    data = bytearray(b"".join(fs.filesystem(uris[1]).stream(uris[1])))
    data[20] ^= 0xFF  # a payload byte: the framing (and so `count`) is still fine
    with fs.filesystem(uris[1]).create(uris[1]) as out:
        out.write(bytes(data))
    assert tfrecord.count(uris[1]) == 50

    ds = copyahead.dataset(uris, tf.data.TFRecordDataset, tmp_path)
    with pytest.raises(tf.errors.DataLossError) as err:
        for _ in ds:
            pass
    error = tfrecord.corruption_error(err.value)

    assert isinstance(error, DataError)
    # Every live copy-ahead pipeline's current file is named (a trainer has at
    # most two: training and validation); here earlier tests' are still alive.
    assert str(error).startswith("corrupt TFRecord data in ")
    assert str(error).endswith(": corrupted record at 12")
    assert uris[1] in str(error)
    assert uris[0] not in str(error)

    # Under load tf.data's prefetching may take the next file before the error
    # reaches the caller: the file whose record fails its checksum is named.
    moved_on = copyahead.CopyAhead(uris, tmp_path)
    for uri in (uris[1], uris[0]):
        moved_on._now_reading(uri)
    assert uris[0] in copyahead.reading()
    error = tfrecord.corruption_error(err.value)
    assert uris[1] in str(error) and uris[0] not in str(error), str(error)

    # Inside `fit` TF words it "Graph execution error: ... corrupted record at N".
    in_fit = tf.errors.DataLossError(
        None,
        None,
        "Graph execution error:\n\nDetected at node IteratorGetNext defined at ...\n"
        "corrupted record at 12\n\t [[{{node IteratorGetNext}}]] [Op:__inference_step_1]",
    )
    assert str(tfrecord.corruption_error(in_fit)).endswith(": corrupted record at 12")


def test_a_failed_copy_fails_after_the_file_being_read_and_keeps_only_that_one(
    hdfs_dir: str, tmp_path: Path
) -> None:
    uris, _ = _shards(hdfs_dir, tmp_path, files=3)
    fs.filesystem(uris[2]).delete(uris[2])

    for _ in range(3):  # the reader may or may not have opened file 1 when the copy fails
        got = 0
        with pytest.raises(tf.errors.OpError, match="not found on HDFS"):
            for _ in copyahead.dataset(uris, tf.data.TFRecordDataset, tmp_path):
                got += 1
        assert got == 100  # files 0 and 1 read to their end, then the copy's own error

    # No partial copy and no file behind the reader; the file the reader was on
    # stays until the pipeline or the process goes (scratch is removed at exit).
    left = [p.name for p in _on_disk(tmp_path) if p.name != "staging.tfrecord"]
    assert set(left) <= {"000001-part-00001.tfrecord"} and len(left) <= 3, left


def test_scratch_left_by_a_killed_process_is_swept_and_ours_removed_at_exit(
    tmp_path: Path,
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    stale = tmp_path / f"{copyahead.PREFIX}{dead.stdout.strip()}-0000"
    (stale / "pass").mkdir(parents=True)
    (stale / "pass" / "000000-x.tfrecord").write_bytes(b"x")
    alive = tmp_path / f"{copyahead.PREFIX}1-0000"  # pid 1 is always there
    alive.mkdir()

    code = (
        "import sys; from pathlib import Path; from kubetrain_trainer.data import copyahead; "
        "print(copyahead._new_dir(Path(sys.argv[1])))"
    )
    made = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], text=True, capture_output=True, check=True
    )

    assert not stale.exists()
    assert alive.exists()
    assert not Path(made.stdout.strip()).exists()  # removed when that process exited


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_a_trainer_on_a_corrupt_record_exits_as_a_user_error_naming_the_file(
    hdfs: Any, hdfs_digits: str, hdfs_dir: str, tmp_path: Path
) -> None:
    data = f"{hdfs_dir}/digits"
    _copy(hdfs_digits, data)
    bad = f"{data}/train/part-00002.tfrecord"
    raw = bytearray(b"".join(fs.filesystem(bad).stream(bad)))
    raw[len(raw) // 2] ^= 0xFF  # inside some record's payload: only its data CRC notices
    with fs.filesystem(bad).create(bad) as out:
        out.write(bytes(raw))
    spec = {
        "model": {"builtin": "cnn"},
        "data": {"train": f"{data}/train", "validation": f"{data}/validation", **DIGITS},
        "training": {"epochs": 1, "batchSizePerReplica": 32},
        "output": {"modelDir": str(tmp_path / "model")},
    }
    env = {"HADOOP_CONF_DIR": str(hdfs.conf_dir), "KUBETRAIN_SCRATCH_DIR": str(tmp_path / "s")}

    run = run_trainer(spec, env, tmp_path)

    assert run.code == 2, run.stderr[-4000:]
    assert run.message.startswith("corrupt TFRecord data in "), run.message
    assert bad in run.message and "corrupted record at" in run.message, run.message
    assert list((tmp_path / "s").iterdir()) == []


def _copy(src: str, dst: str) -> None:
    """Copy the digits' train/ and validation/ files within HDFS."""
    store = fs.filesystem(src)
    for split in ("train", "validation"):
        for entry in store.listdir(f"{src}/{split}"):
            with store.create(f"{dst}/{split}/{fs.split(entry.path)[1]}") as out:
                out.write(b"".join(store.stream(entry.path)))
