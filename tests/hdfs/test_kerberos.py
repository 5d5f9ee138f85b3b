"""Kerberos end to end against a real secure HDFS (MiniKdc + MiniDFSCluster).

The cluster is what a production one is without privileged ports: Kerberos
RPC with service authorization and permissions, block access tokens, and
SASL on every DataNode connection (dfs.data.transfer.protection). The
trainer logs in as the operator sets it up in a pod: KUBETRAIN_PRINCIPAL and
KUBETRAIN_KEYTAB, a private ticket cache (KRB5CCNAME), and the realm's
krb5.conf (KRB5_CONFIG) for hdfs-native's libgssapi_krb5.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer.data import files, fs, hdfs
from kubetrain_trainer.data.errors import DataError
from tests.harness.hdfs import Kerberos, MiniHdfs
from tests.hdfs.conftest import upload_digits
from tests.trainer import runner

PROTECTION = "authentication"


def _kerberos(cluster: MiniHdfs) -> Kerberos:
    assert cluster.kerberos is not None, "not a secure cluster"
    return cluster.kerberos


def _client_env(cluster: MiniHdfs, ccache: Path, *, credentials: bool) -> dict[str, str]:
    """A trainer's environment for the secure cluster, with or without its keytab."""
    env = {k: v for k, v in os.environ.items() if k not in (hdfs.PRINCIPAL_ENV, hdfs.KEYTAB_ENV)}
    return {
        **env,
        "HADOOP_CONF_DIR": str(cluster.conf_dir),
        **_kerberos(cluster).env(ccache, credentials=credentials),
    }


def _digits_job(tmp_path: Path, digits: str, model_dir: str, **spec: Any) -> Path:
    """The digits job on `digits` (train/, validation/), writing its model to `model_dir`."""
    return runner.job_file(tmp_path, f"{digits}/train", f"{digits}/validation", model_dir, **spec)


@contextlib.contextmanager
def _logged_in(cluster: MiniHdfs, ccache: Path, *, credentials: bool = True) -> Iterator[None]:
    """This process as such a trainer, with fresh hdfs-native clients on the way in and out."""
    with pytest.MonkeyPatch.context() as patch:
        for key in (hdfs.PRINCIPAL_ENV, hdfs.KEYTAB_ENV):
            patch.delenv(key, raising=False)
        for key, value in _client_env(cluster, ccache, credentials=credentials).items():
            patch.setenv(key, value)
        hdfs.filesystem.cache_clear()
        try:
            yield
        finally:
            hdfs.filesystem.cache_clear()


@pytest.fixture(scope="module")
def secure_hdfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniHdfs]:
    """One Kerberized HDFS for this module (~5 s to start, KDC included)."""
    workdir = tmp_path_factory.mktemp("secure-hdfs")
    with MiniHdfs(workdir, kerberos=PROTECTION) as cluster:
        print(f"\nsecure HDFS ready in {cluster.startup_seconds:.1f}s at {cluster.url}")
        yield cluster


@pytest.fixture
def home(secure_hdfs: MiniHdfs, tmp_path: Path) -> str:
    """A fresh directory in the client user's home (the only place it may write)."""
    return f"{secure_hdfs.url}/user/{_kerberos(secure_hdfs).user}/{tmp_path.name}"


@pytest.fixture
def logged_in(secure_hdfs: MiniHdfs, tmp_path: Path) -> Iterator[None]:
    with _logged_in(secure_hdfs, tmp_path / "krb5cc"):
        yield


@pytest.fixture(scope="module")
def secure_digits(secure_hdfs: MiniHdfs, tmp_path_factory: pytest.TempPathFactory) -> str:
    """digits' TFRecord shards in the client user's home, uploaded with its keytab."""
    ccache = tmp_path_factory.mktemp("krb5cc") / "krb5cc"
    uri = f"{secure_hdfs.url}/user/{_kerberos(secure_hdfs).user}/datasets/digits"
    with _logged_in(secure_hdfs, ccache):
        return upload_digits(uri, tmp_path_factory)


def _round_trip(directory: str) -> None:
    """Write a multi-packet file through the trainer's HDFS layer, list it, read it back."""
    data = os.urandom(3 * 1024 * 1024)
    uri = f"{directory}/blob.bin"
    with fs.filesystem(uri).create(uri) as out:
        out.write(data)

    assert files.list_files(directory) == [uri]
    assert b"".join(fs.filesystem(uri).stream(uri)) == data
    with fs.filesystem(uri).open(uri) as f:
        f.seek(len(data) - 10)
        assert f.read() == data[-10:]


@pytest.mark.usefixtures("logged_in")
def test_a_keytab_login_writes_and_reads_back_through_sasl_protected_datanodes(home: str) -> None:
    _round_trip(home)


@pytest.mark.parametrize("protection", ["integrity", "privacy"])
def test_sasl_integrity_and_privacy_work_too(protection: str, tmp_path: Path) -> None:
    """Stronger levels (RPC and data transfer signed, or encrypted) on a cluster of their own."""
    with (
        MiniHdfs(tmp_path, kerberos=protection) as cluster,
        _logged_in(cluster, tmp_path / "krb5cc"),
    ):
        _round_trip(f"{cluster.url}/user/{_kerberos(cluster).user}")


@pytest.mark.usefixtures("logged_in")
def test_the_datanode_refuses_a_client_that_skips_sasl_and_the_error_says_why(
    secure_hdfs: MiniHdfs, home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster really enforces SASL data transfer (the tests above do not pass by luck),
    and a client conf that forgets it gets a short error naming the missing key.

    A read, not a write: hdfs-native's writer blocks ~15 s in its destructor after a
    refused pipeline.
    """
    uri = f"{home}/blob.bin"
    with fs.filesystem(uri).create(uri) as out:
        out.write(b"x" * 1024)
    conf = tmp_path / "no-sasl"
    conf.mkdir()
    (conf / "core-site.xml").write_text((secure_hdfs.conf_dir / "core-site.xml").read_text())
    hdfs_site = (secure_hdfs.conf_dir / "hdfs-site.xml").read_text()
    (conf / "hdfs-site.xml").write_text(
        "\n".join(line for line in hdfs_site.splitlines() if hdfs.PROTECTION_KEY not in line)
    )
    monkeypatch.setenv("HADOOP_CONF_DIR", str(conf))
    hdfs.filesystem.cache_clear()

    assert fs.filesystem(uri).info(uri) is not None  # the NameNode lets it in
    with pytest.raises(DataError) as caught:
        b"".join(fs.filesystem(uri).stream(uri))
    assert str(caught.value) == (
        f"{uri}: read failed: no DataNode would serve it (tried 127.0.0.1:"
        f"{secure_hdfs.datanode_port}); if the cluster protects data transfer, hdfs-site.xml"
        f" must set {hdfs.PROTECTION_KEY} as the cluster does"
    )


def test_no_credentials_fail_at_once_as_a_permanent_kerberos_error(
    secure_hdfs: MiniHdfs, home: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    with (
        _logged_in(secure_hdfs, tmp_path / "krb5cc", credentials=False),
        pytest.raises(hdfs.HdfsAuthError) as caught,
    ):
        files.list_files(home)
    elapsed = time.monotonic() - started

    message = str(caught.value)
    assert message.startswith(f"{home}: Kerberos authentication to HDFS failed (no keytab")
    assert "No Kerberos credentials available" in message
    assert not isinstance(caught.value, hdfs.HdfsUnavailableError)  # not retried as an outage
    assert elapsed < 30, f"took {elapsed:.0f}s"


def test_a_keytab_for_another_principal_names_the_keytab(
    secure_hdfs: MiniHdfs, home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _logged_in(secure_hdfs, tmp_path / "krb5cc"):
        monkeypatch.setenv(hdfs.PRINCIPAL_ENV, f"bob@{_kerberos(secure_hdfs).realm}")
        with pytest.raises(hdfs.HdfsAuthError) as caught:
            files.list_files(home)
    keytab = _kerberos(secure_hdfs).keytab
    assert f"(keytab {keytab} for bob@" in str(caught.value)


@pytest.mark.trainer
@pytest.mark.timeout(600)
def test_a_job_trains_from_kerberized_hdfs_with_a_keytab_and_uploads_its_model(
    secure_hdfs: MiniHdfs, secure_digits: str, home: str, tmp_path: Path
) -> None:
    model_dir = f"{home}/models/digits"
    job = _digits_job(tmp_path, secure_digits, model_dir, replicas={"worker": {"replicas": 1}})
    env = _client_env(secure_hdfs, tmp_path / "krb5cc", credentials=True)
    result = runner.run(job, tmp_path, env=env)

    assert result.returncode == 0, result.stdout[-4000:]
    with _logged_in(secure_hdfs, tmp_path / "krb5cc-check"):
        remote = fs.filesystem(model_dir)
        saved = json.loads(b"".join(remote.stream(f"{model_dir}/job.json")))
        info = remote.info(f"{model_dir}/model.keras")
    assert saved["metrics"]["val_accuracy"] >= 0.9, saved["metrics"]
    assert info is not None and info.size > 0


@pytest.mark.trainer
@pytest.mark.timeout(300)
def test_a_job_without_credentials_fails_fast_with_exit_2(
    secure_hdfs: MiniHdfs, secure_digits: str, tmp_path: Path
) -> None:
    job = _digits_job(
        tmp_path,
        secure_digits,
        str(tmp_path / "m"),
        # exit 2 is final under ExitCode; a retryable exit would restart once more.
        runPolicy={"restartPolicy": "ExitCode", "backoffLimit": 1},
    )
    started = time.monotonic()
    result = runner.run(
        job, tmp_path, env=_client_env(secure_hdfs, tmp_path / "cc", credentials=False)
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 2, result.stdout[-4000:]
    assert "Kerberos authentication to HDFS failed" in result.stdout
    assert "retryable failure" not in result.stdout
    assert elapsed < 60, f"took {elapsed:.0f}s"
