"""The Helm chart: lint, render with each supported values file, reject bad values.

`helm template` renders offline, so these tests need only the helm binary that
hack/cluster-tools.sh builds; test_install_cluster.py installs for real.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrain_operator.settings import OperatorSettings
from tests.install.chartlib import (
    CHART,
    CLUSTER_SCOPED,
    HERE,
    MANIFESTS,
    RECOMMENDED_LABELS,
    REPO,
    VALUES_FILES,
    RenderError,
    assert_probes,
    assert_secure,
    container,
    env,
    field_refs,
    helm,
    load_manifest,
    objects,
    one,
    render,
)

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RBAC_RULES = one(load_manifest("rbac.yaml"), "ClusterRole")["rules"]
#: The leader-election Role and RoleBinding of manifests/rbac.yaml.
LEADER_ROLE = one(load_manifest("rbac.yaml"), "Role")
LEADER_BINDING = one(load_manifest("rbac.yaml"), "RoleBinding")
BASE_KINDS = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"]
#: What leaderElection.enabled (the default) adds.
BASE_KINDS += ["Role", "RoleBinding"]
ROLLING_UPDATE = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
#: The default values and each values file of tests/install.
RENDERS = [(), *((v,) for v in VALUES_FILES)]


def _values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def _schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


# --- chart files --------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "kubetrain"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"


def test_chart_crd_is_the_generated_one() -> None:
    """crds/crd.yaml is a copy of manifests/crd.yaml; `make crd` must refresh both."""
    assert (CHART / "crds" / "crd.yaml").read_bytes() == (MANIFESTS / "crd.yaml").read_bytes(), (
        "charts/kubetrain/crds/crd.yaml differs from manifests/crd.yaml: "
        "cp manifests/crd.yaml charts/kubetrain/crds/crd.yaml"
    )


@pytest.mark.parametrize("values", RENDERS, ids=str)
def test_lint_strict(values: tuple[str, ...]) -> None:
    args = [a for v in values for a in ("--values", str(HERE / v))]
    proc = helm("lint", "--strict", str(CHART), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_one_kind_per_template_named_component_kind() -> None:
    """cert-manager's layout: templates/<component>-<kind>.yaml, one kind each."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for values in RENDERS:
        for r in render(*values):
            by_file.setdefault(Path(r.source).name, []).append(r.obj)
    templates = {p.name for p in (CHART / "templates").glob("*.yaml")}
    assert set(by_file) == templates, "every template renders with some values file"
    for name, objs in by_file.items():
        kinds = {o["kind"] for o in objs}
        assert len(kinds) == 1, f"{name}: {kinds}"
        component = objs[0]["metadata"]["labels"]["app.kubernetes.io/component"]
        assert name == f"{component}-{kinds.pop().lower()}.yaml"


# --- values.yaml and values.schema.json ----------------------------------------


def _object_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path or "<root>", node)] if node.get("type") == "object" else []
    for key, sub in node.get("properties", {}).items():
        out += _object_nodes(sub, f"{path}.{key}".lstrip("."))
    if isinstance(node.get("items"), dict):
        out += _object_nodes(node["items"], f"{path}[]")
    return out


def test_schema_closes_every_object() -> None:
    """additionalProperties at every level: false, or a schema for maps (labels,
    quantities), or an explicit true for Kubernetes objects left to the API server."""
    for path, node in _object_nodes(_schema()):
        assert "additionalProperties" in node, f"{path}: no additionalProperties"
        if node["additionalProperties"] is True:
            assert "API server" in node["description"], path


def _property_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, sub in node.get("properties", {}).items():
        out.append((f"{path}.{key}".lstrip("."), sub))
        out += _property_nodes(sub, f"{path}.{key}")
        if isinstance(sub.get("items"), dict):
            out += _property_nodes(sub["items"], f"{path}.{key}[]")
    return out


def test_schema_types_and_describes_every_property() -> None:
    for path, node in _property_nodes(_schema()):
        assert "type" in node, f"{path}: no type"
        assert node.get("description"), f"{path}: no description"


def _defaults_check(node: dict[str, Any], value: Any, path: str) -> None:
    assert node.get("default") == value, f"{path}: schema default {node.get('default')!r}"
    if isinstance(value, dict) and "properties" in node:
        for key, sub in value.items():
            _defaults_check(node["properties"][key], sub, f"{path}.{key}")


def test_schema_defaults_are_values_yaml() -> None:
    """Every key of values.yaml has its value as the schema's default."""
    schema = _schema()
    assert set(schema["properties"]) == set(_values())
    for key, value in _values().items():
        _defaults_check(schema["properties"][key], value, key)


def _values_table_module() -> Any:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import values_table

        return values_table
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_every_values_key_has_a_comment() -> None:
    """Top-level keys, and all keys of a group with any documented key, carry a comment.

    The keys inside Kubernetes objects (resources, securityContext, ...) are
    documented by the comment on the object.
    """
    by_parent: dict[tuple[str, ...], list[Any]] = {}
    for entry in _values_table_module().entries((CHART / "values.yaml").read_text()):
        by_parent.setdefault(entry.path[:-1], []).append(entry)
    for parent, children in by_parent.items():
        if parent == () or any(c.comment for c in children):
            for child in children:
                assert child.comment, f"{'.'.join(child.path)}: no comment above it in values.yaml"


def test_values_table_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "values_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_values_table_lists_every_leaf_setting() -> None:
    readme = (CHART / "README.md").read_text()
    for key in ("image.tag", "watchNamespaces", "metrics.serviceMonitor.enabled", "resources"):
        assert f"| `{key}` |" in readme


# --- default render: same objects as manifests/ -------------------------------------


def test_default_render_kinds() -> None:
    assert sorted(r.kind for r in render()) == sorted(BASE_KINDS)


def test_default_names_are_those_of_the_manifests() -> None:
    """Release `kubetrain` installs what `kubectl apply -f manifests/` does."""
    rendered = render()
    for kind, manifest in [
        ("Deployment", "deployment.yaml"),
        ("Service", "service.yaml"),
        ("ServiceAccount", "serviceaccount.yaml"),
        ("ClusterRole", "rbac.yaml"),
        ("ClusterRoleBinding", "rbac.yaml"),
        ("Role", "rbac.yaml"),
        ("RoleBinding", "rbac.yaml"),
    ]:
        chart_obj, plain = one(rendered, kind), one(load_manifest(manifest), kind)
        assert chart_obj["metadata"]["name"] == plain["metadata"]["name"], kind
        assert chart_obj["metadata"].get("namespace") == plain["metadata"].get("namespace"), kind


def test_default_deployment_matches_the_manifest() -> None:
    chart_dep = one(render(), "Deployment")
    plain = one(load_manifest("deployment.yaml"), "Deployment")
    assert env(chart_dep) == env(plain)
    assert field_refs(chart_dep) == field_refs(plain)
    assert chart_dep["spec"]["replicas"] == plain["spec"]["replicas"]
    assert chart_dep["spec"]["strategy"] == plain["spec"]["strategy"]
    chart_pod, plain_pod = chart_dep["spec"]["template"]["spec"], plain["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "securityContext", "volumes", "nodeSelector"):
        assert chart_pod[field] == plain_pod[field], field
    fields = ("image", "imagePullPolicy", "ports", "livenessProbe", "readinessProbe")
    fields += ("resources", "securityContext", "volumeMounts")
    for field in fields:
        assert container(chart_dep)[field] == container(plain)[field], field


def test_default_rbac_equals_manifests_rbac() -> None:
    rendered = render()
    assert one(rendered, "ClusterRole")["rules"] == RBAC_RULES
    binding = one(rendered, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(rendered, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubetrain-operator", "namespace": "kubetrain-system"}
    ]
    role, role_binding = one(rendered, "Role"), one(rendered, "RoleBinding")
    assert role["rules"] == LEADER_ROLE["rules"]
    for field in ("roleRef", "subjects"):
        assert role_binding[field] == LEADER_BINDING[field], field


def test_include_crds_renders_the_crd() -> None:
    crd = one(render(extra=("--include-crds",)), "CustomResourceDefinition")
    assert crd == one(load_manifest("crd.yaml"), "CustomResourceDefinition")


# --- every render ---------------------------------------------------------------------


@pytest.mark.parametrize("values", RENDERS, ids=str)
def test_every_object_has_recommended_labels(values: tuple[str, ...]) -> None:
    for r in render(*values):
        labels = r.obj["metadata"].get("labels", {})
        missing = [k for k in RECOMMENDED_LABELS if k not in labels]
        assert not missing, f"{r.source}: {r.kind} lacks {missing}"
        assert labels["app.kubernetes.io/name"] == "kubetrain"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    pod = one(render(*values), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(k in pod for k in RECOMMENDED_LABELS)


@pytest.mark.parametrize("values", RENDERS, ids=str)
def test_deployment_is_secure_and_probed(values: tuple[str, ...]) -> None:
    deployment = one(render(*values), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == ROLLING_UPDATE
    assert_secure(deployment)
    assert_probes(deployment)


@pytest.mark.parametrize("values", RENDERS, ids=str)
def test_env_is_read_by_the_operator(values: tuple[str, ...]) -> None:
    """The rendered env parses with the operator's own settings loader."""
    settings = OperatorSettings.from_env(env(one(render(*values), "Deployment")))
    chart_values = _values()
    for name in values:
        chart_values.update(yaml.safe_load((HERE / name).read_text()))
    assert settings.namespaces == tuple(chart_values["watchNamespaces"])
    assert settings.plan.default_image == chart_values["trainerImage"]
    assert settings.max_concurrent_creates == chart_values["maxConcurrentCreates"]
    assert settings.resync_seconds == chart_values["resyncSeconds"]
    assert settings.plan.port == chart_values["tfPort"]
    assert settings.leader_election_namespace == "kubetrain-system"


@pytest.mark.parametrize("values", RENDERS, ids=str)
def test_selectors_match_the_pod(values: tuple[str, ...]) -> None:
    rendered = render(*values)
    deployment = one(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert "app.kubernetes.io/version" not in selector, "selectors cannot change on upgrade"
    service = one(rendered, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    target = service["spec"]["ports"][0]["targetPort"]
    assert target in {p["name"] for p in container(deployment)["ports"]}
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert one(rendered, "ClusterRoleBinding")["subjects"][0]["name"] == account
    for binding in objects(rendered, "RoleBinding"):
        assert binding["subjects"][0]["name"] == account


def test_long_release_names_stay_dns_labels() -> None:
    # 52 characters (helm allows 53): "-operator" is cut at a "-", which must go.
    release = "team-" * 10 + "ml"
    for values in RENDERS:
        for r in render(*values, release=release):
            name = r.obj["metadata"]["name"]
            assert len(name) <= 63 and DNS_1123_LABEL.match(name), f"{r.kind}: {name!r}"


def test_release_named_like_the_chart_is_not_doubled() -> None:
    names = {r.obj["metadata"]["name"] for r in render(release="ml-kubetrain")}
    assert "ml-kubetrain-operator" in names


# --- the three values files -----------------------------------------------------------


def test_namespaced_watch_uses_roles() -> None:
    rendered = render("values-namespaced.yaml")
    assert sorted(r.kind for r in rendered) == sorted(
        [*BASE_KINDS, "Role", "Role", "RoleBinding", "RoleBinding"]
    )
    roles = [r for r in objects(rendered, "Role") if r["metadata"]["name"] == "kubetrain-operator"]
    assert [r["metadata"]["namespace"] for r in roles] == ["team-a", "team-b"]
    cluster_role = one(rendered, "ClusterRole")
    # Only what a Role cannot grant stays cluster-wide ...
    assert {res for rule in cluster_role["rules"] for res in rule["resources"]} <= CLUSTER_SCOPED
    for role in roles:
        assert not {res for rule in role["rules"] for res in rule["resources"]} & CLUSTER_SCOPED
        # ... and together they are exactly manifests/rbac.yaml.
        assert role["rules"] + cluster_role["rules"] == RBAC_RULES
    for binding in objects(rendered, "RoleBinding"):
        if binding["metadata"]["name"] == "kubetrain-operator-leader":
            assert binding["metadata"]["namespace"] == "kubetrain-system"
            continue
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "kubetrain-operator",
        }
        assert binding["subjects"][0]["namespace"] == "kubetrain-system"
    assert env(one(rendered, "Deployment"))["KUBETRAIN_NAMESPACES"] == "team-a,team-b"


def test_servicemonitor_scrapes_the_metrics_port() -> None:
    rendered = render("values-servicemonitor.yaml")
    assert sorted(r.kind for r in rendered) == sorted([*BASE_KINDS, "ServiceMonitor"])
    monitor, service = one(rendered, "ServiceMonitor"), one(rendered, "Service")
    deployment = one(rendered, "Deployment")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kubetrain-system"]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == (
        "/metrics",
        "15s",
        "5s",
    )
    assert service["spec"]["ports"][0]["port"] == 9102
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports["http-metrics"] == 9102
    assert env(deployment)["KUBETRAIN_METRICS_PORT"] == "9102"


def test_custom_resources_and_scheduling() -> None:
    deployment = one(render("values-resources.yaml"), "Deployment")
    pod, c = deployment["spec"]["template"]["spec"], container(deployment)
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert c["image"] == "registry.example.com/kubetrain/operator:0.1.0-rc1"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"]["node-role.example.com/system"] == "true"
    assert pod["tolerations"][0]["key"] == "node-role.example.com/system"
    assert "nodeAffinity" in pod["affinity"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "example.com/team": "ml-platform"
    }
    assert env(deployment)["KUBETRAIN_VERBOSE"] == "1"


def test_default_image_tag_is_app_version() -> None:
    assert container(one(render(), "Deployment"))["image"] == "kubetrain/operator:0.1.0"


def test_existing_service_account() -> None:
    rendered = render(sets=("serviceAccount.create=false", "serviceAccount.name=ops-sa"))
    assert not objects(rendered, "ServiceAccount")
    assert one(rendered, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"
    assert one(rendered, "ClusterRoleBinding")["subjects"][0]["name"] == "ops-sa"
    assert one(rendered, "RoleBinding")["subjects"][0]["name"] == "ops-sa"


# --- leader election and replicas ---------------------------------------------------


def test_leader_election_is_in_the_release_namespace() -> None:
    """The Role, its binding and the Lease all live where the operator runs."""
    rendered = render(release="ops", namespace="platform")
    role, binding = one(rendered, "Role"), one(rendered, "RoleBinding")
    assert role["metadata"]["name"] == "ops-kubetrain-operator-leader"
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "platform"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops-kubetrain-operator", "namespace": "platform"}
    ]
    deployment = one(rendered, "Deployment")
    assert field_refs(deployment) == {
        "KUBETRAIN_LEADER_ELECTION_NAMESPACE": "metadata.namespace",
        "KUBETRAIN_OPERATOR_NAMESPACE": "metadata.namespace",
        "POD_NAME": "metadata.name",
    }
    assert OperatorSettings.from_env(env(deployment)).leader_election_namespace == "platform"


def test_job_network_policies_admit_this_release_and_can_be_turned_off() -> None:
    """The per-job policies admit this release's operator pods (not another
    release's); with jobNetworkPolicy false the operator neither creates them
    nor holds the RBAC to."""
    deployment = one(render(release="ops", namespace="platform"), "Deployment")
    settings = OperatorSettings.from_env(env(deployment))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert settings.network_policy
    assert dict(settings.plan.operator_labels).items() <= pod_labels.items()
    assert dict(settings.plan.operator_labels)["app.kubernetes.io/instance"] == "ops"

    rendered = render(sets=("jobNetworkPolicy=false",))
    assert not OperatorSettings.from_env(env(one(rendered, "Deployment"))).network_policy
    rules = one(rendered, "ClusterRole")["rules"]
    assert "networkpolicies" not in {res for rule in rules for res in rule["resources"]}


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_with_leader_election(replicas: int) -> None:
    rendered = render(sets=(f"replicaCount={replicas}",))
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    assert deployment["spec"]["strategy"] == ROLLING_UPDATE
    assert one(rendered, "Role")["rules"] == LEADER_ROLE["rules"]


def test_replicas_from_a_values_file(tmp_path: Path) -> None:
    """A YAML number (a float to helm) renders as an integer and passes the check."""
    two = tmp_path / "two.yaml"
    two.write_text("replicaCount: 2\n")
    assert one(render(extra=("--values", str(two))), "Deployment")["spec"]["replicas"] == 2
    unelected = tmp_path / "unelected.yaml"
    unelected.write_text("replicaCount: 2\nleaderElection:\n  enabled: false\n")
    with pytest.raises(RenderError) as err:
        render(extra=("--values", str(unelected)))
    assert "replicaCount: 2 needs leaderElection.enabled=true" in str(err.value)


def test_without_leader_election_one_replica_recreated() -> None:
    rendered = render(sets=("leaderElection.enabled=false",))
    assert sorted(r.kind for r in rendered) == sorted(
        k for k in BASE_KINDS if k not in ("Role", "RoleBinding")
    )
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert field_refs(deployment) == {"KUBETRAIN_OPERATOR_NAMESPACE": "metadata.namespace"}
    assert OperatorSettings.from_env(env(deployment)).leader_election_namespace is None
    assert_secure(deployment)
    assert_probes(deployment)


def test_several_replicas_need_leader_election() -> None:
    with pytest.raises(RenderError) as err:
        render(sets=("leaderElection.enabled=false", "replicaCount=2"))
    message = str(err.value)
    assert "replicaCount: 2 needs leaderElection.enabled=true" in message
    assert "every replica would act on every TrainingJob" in message


# --- bad values fail, naming the key ------------------------------------------------


def test_invalid_values_file_names_each_key() -> None:
    with pytest.raises(RenderError) as err:
        render("invalid-values.yaml")
    message = str(err.value)
    assert "'tga' not allowed" in message and "/image" in message
    assert "'enabeld' not allowed" in message and "/metrics/serviceMonitor" in message
    assert "/tfPort" in message and "want integer" in message


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("imag.tag=x", "'imag' not allowed"),
        ("podSecurityContext.runAsNonroot=true", "'runAsNonroot' not allowed"),
        ("resources.request.cpu=1", "'request' not allowed"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("logLevel=trace", "/logLevel"),
        ("resyncSeconds=0", "/resyncSeconds"),
        ("metrics.port=70000", "/metrics/port"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("replicaCount=0", "/replicaCount"),
        ("leaderElection.enable=true", "'enable' not allowed"),
        ("serviceAccount.create=false", "serviceAccount.name: required"),
    ],
)
def test_bad_value_fails_naming_the_key(setting: str, named: str) -> None:
    with pytest.raises(RenderError) as err:
        render(sets=(setting,))
    assert named in str(err.value)


def test_wrong_type_from_set_string() -> None:
    with pytest.raises(RenderError) as err:
        render(extra=("--set-string", "maxConcurrentCreates=16"))
    assert "/maxConcurrentCreates" in str(err.value) and "want integer" in str(err.value)
