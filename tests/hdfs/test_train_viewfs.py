"""A trainer reads its data through a viewfs:// mount table and resumes from checkpoints on HDFS."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer import checkpoints
from kubetrain_trainer.data import fs
from tests.trainer.replica import DIGITS, Run, run_trainer

EPOCH = re.compile(r"^Epoch (\d+)/(\d+)", re.MULTILINE)


def _viewfs_conf(hdfs: Any, tmp_path: Path) -> Path:
    """The cluster's client config plus a mount table: viewfs://kt/data -> hdfs://.../datasets."""
    conf = tmp_path / "viewfs-conf"
    shutil.copytree(hdfs.conf_dir, conf)
    props = {
        "fs.defaultFS": "viewfs://kt",
        "fs.viewfs.mounttable.kt.link./data": f"{hdfs.url}/datasets",
        "fs.viewfs.mounttable.kt.linkFallback": f"{hdfs.url}/",
    }
    body = "".join(
        f"<property><name>{k}</name><value>{v}</value></property>" for k, v in props.items()
    )
    (conf / "core-site.xml").write_text(f"<configuration>{body}</configuration>")
    return conf


def _train(epochs: int, checkpoint_dir: str, conf: Path, tmp_path: Path) -> Run:
    spec = {
        "model": {"builtin": "cnn"},
        "data": {
            "train": "viewfs://kt/data/digits/train",
            "validation": "viewfs://kt/data/digits/validation",
            **DIGITS,
        },
        "training": {"epochs": epochs, "batchSizePerReplica": 32, "learningRate": 0.003},
        "output": {"modelDir": str(tmp_path / "model"), "checkpointDir": checkpoint_dir},
    }
    env = {"HADOOP_CONF_DIR": str(conf), "KUBETRAIN_SCRATCH_DIR": str(tmp_path / "scratch")}
    return run_trainer(spec, env, tmp_path, uid="uid-viewfs")


@pytest.mark.trainer
@pytest.mark.timeout(900)
def test_viewfs_input_and_hdfs_checkpoints_resume_where_the_last_run_stopped(
    hdfs: Any, hdfs_digits: str, hdfs_dir: str, tmp_path: Path
) -> None:
    assert hdfs_digits == f"{hdfs.url}/datasets/digits"
    conf = _viewfs_conf(hdfs, tmp_path)
    ckpt = f"{hdfs_dir}/checkpoints"
    mine = f"{ckpt}/uid-viewfs/worker-0"

    first = _train(2, ckpt, conf, tmp_path)
    assert first.code == 0, first.stderr[-4000:]
    assert [int(n) for n, _ in EPOCH.findall(first.stdout)] == [1, 2]
    assert checkpoints.saved_epochs(mine) == [1, 2]

    second = _train(4, ckpt, conf, tmp_path)
    assert second.code == 0, second.stderr[-4000:]
    assert "resuming from epoch 2, the newest finished by every worker" in second.stderr
    assert [int(n) for n, _ in EPOCH.findall(second.stdout)] == [3, 4]
    assert checkpoints.saved_epochs(mine) == [3, 4]
    metrics = json.loads((tmp_path / "model" / "job.json").read_text())["metrics"]
    assert metrics["val_accuracy"] >= 0.8, metrics
    # The copy-ahead scratch went with each process.
    assert list((tmp_path / "scratch").iterdir()) == []
    # No staging files next to the checkpoints.
    names = sorted(fs.split(e.path)[1] for e in fs.filesystem(mine).listdir(mine))
    assert names == [
        "epoch-00003.done",
        "epoch-00003.weights.h5",
        "epoch-00004.done",
        "epoch-00004.weights.h5",
    ]
