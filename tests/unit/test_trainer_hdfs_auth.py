"""hdfs-native's Kerberos failures become one clear, permanent error; other errors do not.

The texts are hdfs-native 0.14's, as a Kerberized MiniDFSCluster produced
them (tests/hdfs/test_kerberos.py runs the real thing).
"""

from __future__ import annotations

import pytest

from kubetrain_trainer.data import hdfs

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
