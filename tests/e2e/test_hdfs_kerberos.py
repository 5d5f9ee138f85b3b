"""A TrainingJob on a Kerberized HDFS through the operator, set up as a user would.

A real MiniKdc keytab in a Secret (spec.data.hdfs.kerberosSecret), the
cluster's Hadoop conf in a ConfigMap (configMap) and its krb5.conf in another
(krb5ConfigMap): the operator mounts all three, and trainer pods, each in its
own network namespace, log in from the keytab at the KDC the mounted
krb5.conf names, read their TFRecords from hdfs:// (Kerberos RPC, block
tokens, SASL on every DataNode connection) and write their model back there.
Pods reach the NameNode and DataNode on the node's bridge address, where the
cluster listens, and the loopback-only KDC through a port proxy there. The
keytab must then appear in no pod log, the operator log, the job or Events.
The same job without the krb5 ConfigMap fails at once as a config error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubetrain_trainer.data import fs
from tests.e2e import test_lifecycle as lifecycle
from tests.e2e import test_operator as base
from tests.e2e.operator_fixture import RunningOperator
from tests.harness.cluster import Cluster
from tests.harness.hdfs import Kerberos, MiniHdfs
from tests.harness.kubelet import TestKubelet
from tests.hdfs import test_kerberos as secure
from tests.reliability import test_secrets as secrets

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pod_secure_hdfs(
    kubelet: TestKubelet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MiniHdfs]:
    """A Kerberized HDFS pods can reach: DataNode advertised at the node's bridge IP,
    the KDC (bound to 127.0.0.1) forwarded there."""
    workdir = tmp_path_factory.mktemp("pod-secure-hdfs")
    with MiniHdfs(workdir, datanode_host=kubelet.node_ip, kerberos="authentication") as hdfs:
        kubelet.expose_host_port(secure._kerberos(hdfs).kdc_port)
        yield hdfs


def _user_objects(cluster: Cluster, ns: str, hdfs: MiniHdfs, node_ip: str, tmp_path: Path) -> None:
    """The keytab Secret and the two ConfigMaps, from the files a Hadoop admin hands out."""
    krb: Kerberos = secure._kerberos(hdfs)
    krb5_conf = tmp_path / "krb5.conf"
    krb5_conf.write_text(krb.krb5_conf_for(node_ip))
    conf = hdfs.write_conf(tmp_path / "hadoop-conf", node_ip)
    create = ("create", "-n", ns)
    cluster.kubectl(*create, "secret", "generic", "hdfs-keytab", f"--from-file=keytab={krb.keytab}")
    cluster.kubectl(*create, "configmap", "hadoop-conf", f"--from-file={conf}")
    cluster.kubectl(*create, "configmap", "krb5-conf", f"--from-file=krb5.conf={krb5_conf}")


def _job(name: str, ns: str, home: str, data: Path, out: Path, principal: str) -> dict[str, Any]:
    """Digits from `home`/digits on HDFS, the model to `home`/models/`name`, no host volumes."""
    doc = base._job(name, ns, data, out, runPolicy={"restartPolicy": "ExitCode", "backoffLimit": 0})
    doc["spec"]["training"]["epochs"] = 3
    doc["spec"]["data"].update(
        train=f"{home}/digits/train",
        validation=f"{home}/digits/validation",
        volumes=[],
        hdfs={
            "configMap": "hadoop-conf",
            "krb5ConfigMap": "krb5-conf",
            "kerberosSecret": "hdfs-keytab",
            "principal": principal,
        },
    )
    doc["spec"]["output"]["modelDir"] = f"{home}/models/{name}"
    return doc


@pytest.mark.timeout(420)
def test_a_job_trains_from_kerberized_hdfs_with_a_keytab_secret_and_krb5_config_map(
    cluster: Cluster,
    kubelet: TestKubelet,
    operator: RunningOperator,
    pod_secure_hdfs: MiniHdfs,
    digits_host_dir: Path,
    out_dir: Path,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    ns = base._namespace(cluster, "e2e-kerberos")
    krb = secure._kerberos(pod_secure_hdfs)
    path = f"/user/{krb.user}"
    with secure._logged_in(pod_secure_hdfs, tmp_path / "krb5cc"):
        fs.copy_tree(str(digits_host_dir), f"{pod_secure_hdfs.url}{path}/digits")
    _user_objects(cluster, ns, pod_secure_hdfs, kubelet.node_ip, tmp_path)
    pod_home = f"hdfs://{kubelet.node_ip}:{pod_secure_hdfs.rpc_port}{path}"
    base._apply(cluster, _job("krb", ns, pod_home, digits_host_dir, out_dir, krb.principal))
    # The same job without krb5ConfigMap: the pods know no KDC for the realm.
    blind = _job("no-krb5", ns, pod_home, digits_host_dir, out_dir, krb.principal)
    del blind["spec"]["data"]["hdfs"]["krb5ConfigMap"]
    blind["spec"]["replicas"]["worker"]["replicas"] = 1
    base._apply(cluster, blind)

    final = ("Succeeded", "Failed")
    failed = lifecycle._wait_phase(cluster, ns, "no-krb5", final, 180, operator.log)
    condition = lifecycle._condition(failed, "Failed")
    assert failed["phase"] == "Failed" and failed.get("restartCount", 0) == 0, condition
    assert "Kerberos authentication to HDFS failed" in condition["message"], condition
    done = lifecycle._wait_phase(cluster, ns, "krb", final, 300, operator.log)
    assert done["phase"] == "Succeeded", (done, kubelet.logs(ns, "krb-worker-0"))
    model = f"{pod_secure_hdfs.url}{path}/models/krb"
    with secure._logged_in(pod_secure_hdfs, tmp_path / "krb5cc-check"):
        saved = json.loads(b"".join(fs.filesystem(model).stream(f"{model}/job.json")))
        info = fs.filesystem(model).info(f"{model}/model.keras")
    assert info is not None and info.size > 0
    assert saved["metrics"]["val_accuracy"] >= 0.5, saved["metrics"]
    places = secrets.outputs(cluster, kubelet, operator, ns, ["krb", "no-krb5"])
    assert len([where for where in places if where.endswith(".log")]) == 3, places.keys()
    leaked = secrets.leaks(places, [krb.keytab.read_bytes()])
    assert not leaked, f"the keytab was written to {leaked}"
    print(f"\nKerberized job Succeeded in {time.monotonic() - started:.0f}s, {saved['metrics']}")
    print(f"without krb5ConfigMap: {condition['message'][-300:]}")

    base._delete_and_collect(cluster, ns, ["krb", "no-krb5"], operator.log)
