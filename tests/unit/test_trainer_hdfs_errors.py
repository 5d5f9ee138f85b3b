"""hdfs-native's Kerberos and DataNode refusals become short, clear, permanent errors.

The texts are hdfs-native 0.14's, as a Kerberized MiniDFSCluster produced
them (tests/hdfs/test_kerberos.py runs the real thing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrain_trainer.data import hdfs
from tests.harness.hdfs import write_client_conf

NO_CREDS = (
    'GSSAPIError(GssMajorCodes { raw: "0x00070000", calling_error: "none", routine_error: '
    '"GSS_S_NO_CRED", supplementary_info: "0x0000" }, 2529639066, "No credentials were '
    "supplied, or the credentials were unavailable or inaccessible: Cannot find KDC for realm "
    '\\"EXAMPLE.COM\\"")'
)


def test_a_gssapi_error_says_kerberos_and_which_keytab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hdfs.PRINCIPAL_ENV, "train@EXAMPLE.COM")
    monkeypatch.setenv(hdfs.KEYTAB_ENV, "/etc/kubetrain/keytab/keytab")
    err = hdfs.auth_error("hdfs://nn/data", RuntimeError(NO_CREDS))
    assert isinstance(err, hdfs.HdfsAuthError)
    assert not isinstance(err, hdfs.HdfsUnavailableError)
    assert str(err).startswith(
        "hdfs://nn/data: Kerberos authentication to HDFS failed "
        "(keytab /etc/kubetrain/keytab/keytab for train@EXAMPLE.COM): No credentials were "
        "supplied, or the credentials were unavailable or inaccessible: "
        'Cannot find KDC for realm "EXAMPLE.COM". '
    )


def test_without_a_keytab_it_names_the_ticket_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hdfs.PRINCIPAL_ENV, raising=False)
    monkeypatch.delenv(hdfs.KEYTAB_ENV, raising=False)
    monkeypatch.setenv("KRB5CCNAME", "FILE:/tmp/krb5cc")
    err = hdfs.auth_error("hdfs://nn/data", RuntimeError(NO_CREDS))
    assert err is not None
    assert "(no keytab (KUBETRAIN_PRINCIPAL/KUBETRAIN_KEYTAB unset), FILE:/tmp/krb5cc)" in str(err)


@pytest.mark.parametrize(
    "error",
    [
        OSError("Connection refused (os error 111)"),
        OSError("SASLError: connection reset"),  # a network error stays an outage
        RuntimeError('RPCError("org.apache.hadoop.security.AccessControlException", "denied")'),
    ],
)
def test_other_errors_are_not_auth_errors(error: Exception) -> None:
    assert hdfs.auth_error("hdfs://nn/data", error) is None


REFUSED = (
    'DataTransferError("All DataNodes failed: [DatanodeInfoProto { id: DatanodeIdProto { '
    'ip_addr: \\"10.0.0.7\\", host_name: \\"dn-1\\", datanode_uuid: \\"336f\\", '
    'xfer_port: 9866, info_port: 9864 }, capacity: Some(5) }]")'
)


@pytest.mark.parametrize(
    ("site", "hint"),
    [({}, True), ({hdfs.PROTECTION_KEY: "privacy"}, False)],
)
def test_all_datanodes_failed_is_short_and_names_the_protection_key_when_unset(
    site: dict[str, str], hint: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HADOOP_CONF_DIR", str(write_client_conf(tmp_path, "nn:8020", site)))
    err = hdfs.datanode_error("hdfs://nn/f", RuntimeError(REFUSED))
    assert err is not None
    expected = "hdfs://nn/f: read failed: no DataNode would serve it (tried 10.0.0.7:9866)"
    if hint:
        expected += (
            "; if the cluster protects data transfer, hdfs-site.xml must set "
            "dfs.data.transfer.protection as the cluster does"
        )
    assert str(err) == expected


def test_other_runtime_errors_are_not_datanode_refusals() -> None:
    assert hdfs.datanode_error("hdfs://nn/f", RuntimeError("ChecksumError")) is None
