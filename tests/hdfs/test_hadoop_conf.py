"""A missing or wrong Hadoop config fails the trainer at once, naming the file or key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer.data import files, hadoopconf
from kubetrain_trainer.data.hadoopconf import HadoopConfigError
from tests.trainer.replica import DIGITS, run_trainer

HA = {
    "dfs.nameservices": "prod",
    "dfs.ha.namenodes.prod": "nn1,nn2",
    "dfs.namenode.rpc-address.prod.nn1": "a:8020",
    "dfs.namenode.rpc-address.prod.nn2": "b:8020",
}


def _xml(path: Path, props: dict[str, str]) -> None:
    body = "".join(
        f"<property><name>{k}</name><value>{v}</value></property>" for k, v in props.items()
    )
    path.write_text(f"<configuration>{body}</configuration>")


@pytest.mark.parametrize(
    ("base", "props", "expected"),
    [
        ("hdfs://nn:8020", {}, None),
        ("hdfs://", {"fs.defaultFS": "hdfs://nn:8020"}, None),
        ("hdfs://", {}, "fs.defaultFS is not set in /conf/core-site.xml"),
        ("hdfs://", {"fs.defaultFS": "file:///"}, "fs.defaultFS=file:/// in /conf/core-site.xml"),
        ("hdfs://", {"fs.defaultFS": "hdfs://prod"}, "dfs.ha.namenodes.prod is not set"),
        ("hdfs://prod", HA, None),
        (
            "hdfs://other",
            HA,
            "'other' must be a nameservice, but dfs.ha.namenodes.other is not set "
            "in /conf/hdfs-site.xml (dfs.nameservices: prod)",
        ),
        (
            "hdfs://prod",
            {**HA, "dfs.ha.namenodes.prod": "nn1,nn3"},
            "dfs.namenode.rpc-address.prod.nn3 is not set in /conf/hdfs-site.xml",
        ),
        ("viewfs://cl", {"fs.viewfs.mounttable.cl.linkFallback": "hdfs://nn:8020/"}, None),
        (
            "viewfs://cl",
            {"fs.viewfs.mounttable.cl.link./data": "hdfs://nn:8020/data"},
            "fs.viewfs.mounttable.cl.linkFallback is not set in /conf/core-site.xml",
        ),
    ],
)
def test_problem_names_the_key_and_file(
    base: str, props: dict[str, str], expected: str | None
) -> None:
    reason = hadoopconf.problem(base, props, "/conf")
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason, reason


def test_without_a_conf_dir_the_message_says_so() -> None:
    reason = hadoopconf.problem("hdfs://", {}, None)
    assert reason == (
        "hdfs:///: the URI names no NameNode and fs.defaultFS is not set in core-site.xml "
        "(HADOOP_CONF_DIR is not set)"
    )


def test_read_rejects_a_missing_dir_and_files_that_are_not_hadoop_xml(tmp_path: Path) -> None:
    with pytest.raises(HadoopConfigError, match=f"HADOOP_CONF_DIR={tmp_path}/nowhere: no such"):
        hadoopconf.read(str(tmp_path / "nowhere"))
    (tmp_path / "core-site.xml").write_text("fs.defaultFS=hdfs://nn:8020\n")
    with pytest.raises(HadoopConfigError, match=f"{tmp_path}/core-site.xml: not valid XML"):
        hadoopconf.read(str(tmp_path))
    (tmp_path / "core-site.xml").write_text("<properties/>")
    with pytest.raises(HadoopConfigError, match="root element is <properties>"):
        hadoopconf.read(str(tmp_path))
    _xml(tmp_path / "core-site.xml", {"fs.defaultFS": "hdfs://nn:8020"})
    assert hadoopconf.read(str(tmp_path)) == {"fs.defaultFS": "hdfs://nn:8020"}


def test_a_uri_without_authority_uses_fs_default_fs(
    hdfs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubetrain_trainer.data import fs

    uri = f"{hdfs.url}/conf-test/a.bin"
    with fs.filesystem(uri).create(uri) as out:
        out.write(b"x")
    monkeypatch.setenv("HADOOP_CONF_DIR", str(hdfs.conf_dir))
    assert files.list_files("hdfs:///conf-test") == ["hdfs:///conf-test/a.bin"]


@pytest.mark.trainer
@pytest.mark.timeout(300)
def test_the_trainer_fails_fast_as_a_user_error_naming_the_file_or_key(
    hdfs: Any, tmp_path: Path
) -> None:
    bad_xml = tmp_path / "bad-xml"
    bad_xml.mkdir()
    (bad_xml / "core-site.xml").write_text("this is not XML <")
    no_default = tmp_path / "no-default"
    no_default.mkdir()
    _xml(no_default / "core-site.xml", {"hadoop.security.authentication": "simple"})
    good = str(hdfs.conf_dir)
    cases = [
        (f"{hdfs.url}/data", str(tmp_path / "nowhere"), f"HADOOP_CONF_DIR={tmp_path}/nowhere"),
        (f"{hdfs.url}/data", str(bad_xml), f"{bad_xml}/core-site.xml: not valid XML"),
        ("hdfs:///data", str(no_default), f"fs.defaultFS is not set in {no_default}/core-site.xml"),
        ("hdfs://prod/data", good, "dfs.ha.namenodes.prod is not set"),
        ("viewfs://cl/data", good, "fs.viewfs.mounttable.cl.linkFallback is not set"),
    ]
    for train, conf, expected in cases:
        spec = {"data": {"train": train, **DIGITS}}
        run = run_trainer(spec, {"HADOOP_CONF_DIR": conf}, tmp_path)
        assert run.code == 2, (train, conf, run.stderr[-3000:])
        assert expected in run.message, (expected, run.message)
        assert "Traceback" not in run.stderr
        assert run.seconds < 20, (train, run.seconds)
