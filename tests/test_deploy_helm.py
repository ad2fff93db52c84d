"""The Helm chart in deploy/helm/hayhooks: linted, rendered for several value sets, and every
manifest validated offline against the Kubernetes schemas (issue 12, point 4).

Helm runs as a library (``helm-python-sdk``), the schemas come from ``kubernetes-validate``; both
are in the test-only extra ``hayhooks[deploy-test]``, which ``make install`` installs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="needs the test extra: pip install -e '.[deploy-test]'")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "hayhooks"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version()]
# Custom resources have no schema in kubernetes-validate; they are checked field by field below.
CUSTOM_KINDS = {"ServiceMonitor"}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": {
        "adminToken": {"value": "s3cret"},
        "apiKeys": {"values": ["k1", "k2"]},
        "secretEnv": {"values": {"OPENAI_API_KEY": "sk-test"}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"hosts": ["h.example"], "secretName": "t"}],
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "env": {"HAYHOOKS_LOG_LEVEL": "warning", "HAYHOOKS_MAX_QUEUED_RUNS": 64},
        "workers": "auto",
        "drain": {"preStopSeconds": 10, "shutdownDelaySeconds": 5, "gracefulShutdownSeconds": 40},
    },
    "fixed-replicas-existing-secrets": {
        "autoscaling": {"enabled": False},
        "replicaCount": 3,
        "podDisruptionBudget": {"enabled": False},
        "adminToken": {"existingSecret": "ops-token", "key": "token"},
        "secretEnv": {"existingSecret": "provider-keys"},
        "store": {"persistence": {"existingClaim": "shared-nfs"}},
        "serviceAccount": {"create": False},
    },
    "redis-store": {"store": {"type": "redis", "redis": {"url": "redis://redis:6379/0"}}},
}


def render(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``kind/name`` -> manifest, for every document the chart renders."""
    manifests = helm.Chart.load(str(CHART)).render(values, name="rel", namespace="ml")
    docs: dict[str, dict[str, Any]] = {}
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


def container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = docs["Deployment/rel-hayhooks"]["spec"]["template"]["spec"]["containers"]
    return c


def env_of(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def test_chart_lints_clean():
    for values in VALUE_SETS.values():
        report = helm.lint(str(CHART), values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(name, kube_version):
    docs = render(VALUE_SETS[name])
    assert "Deployment/rel-hayhooks" in docs and "Service/rel-hayhooks" in docs
    for key, doc in docs.items():
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {key} is not a valid {kube_version} object: {str(exc)[:1500]}")


def test_defaults_shared_volume_probes_autoscaling_and_drain():
    docs = render({})
    deployment = docs["Deployment/rel-hayhooks"]
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["ports"][0]["containerPort"] == 1416
    env = env_of(docs)
    assert env["HAYHOOKS_PIPELINES_DIR"] == "/pipelines" and env["HAYHOOKS_HOST"] == "0.0.0.0"
    assert "HAYHOOKS_ADMIN_TOKEN" not in env  # no token given: deploys stay closed (403)

    claim = docs["PersistentVolumeClaim/rel-hayhooks-pipelines"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pipelines"]["persistentVolumeClaim"]["claimName"] == "rel-hayhooks-pipelines"
    assert {"name": "pipelines", "mountPath": "/pipelines"} in c["volumeMounts"]
    assert pod["securityContext"]["fsGroup"] == 1000 and pod["securityContext"]["runAsNonRoot"]

    # The HPA owns the replica count; CPU-based, aimed at this Deployment.
    assert "replicas" not in deployment["spec"]
    hpa = docs["HorizontalPodAutoscaler/rel-hayhooks"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-hayhooks"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert docs["PodDisruptionBudget/rel-hayhooks"]["spec"]["minAvailable"] == 1

    # The grace period covers preStop (5) + shutdown delay (0) + drain (20) + margin (5).
    assert pod["terminationGracePeriodSeconds"] == 30
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert env["HAYHOOKS_GRACEFUL_SHUTDOWN_TIMEOUT"] == "20"

    # The Service and the PDB select exactly the Deployment's pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        docs["Service/rel-hayhooks"]["spec"]["selector"],
        docs["PodDisruptionBudget/rel-hayhooks"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert not any(k.startswith(("Ingress/", "ServiceMonitor/", "Secret/")) for k in docs)


def test_secrets_ingress_and_service_monitor():
    values = VALUE_SETS["everything"]
    docs = render(values)
    secret = docs["Secret/rel-hayhooks"]["stringData"]
    assert secret == {"admin-token": "s3cret", "api-keys": "k1,k2", "OPENAI_API_KEY": "sk-test"}
    env = env_of(docs)
    assert env["HAYHOOKS_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "rel-hayhooks", "key": "admin-token"}}
    assert env["HAYHOOKS_API_KEYS"] == {"secretKeyRef": {"name": "rel-hayhooks", "key": "api-keys"}}
    assert env["HAYHOOKS_LOG_LEVEL"] == "warning" and env["HAYHOOKS_MAX_QUEUED_RUNS"] == "64"
    assert env["HAYHOOKS_WORKERS"] == "auto" and env["HAYHOOKS_SHUTDOWN_DELAY"] == "5"
    assert container(docs)["envFrom"] == [{"secretRef": {"name": "rel-hayhooks"}}]
    # 10 + 5 + 40 + 5: a pod is never killed while it still drains.
    assert docs["Deployment/rel-hayhooks"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60

    rule = docs["Ingress/rel-hayhooks"]["spec"]["rules"][0]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-hayhooks", "port": {"name": "http"}}

    monitor = docs["ServiceMonitor/rel-hayhooks"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= docs["Service/rel-hayhooks"]["metadata"]["labels"].items()
    )


def test_existing_claim_and_secrets_are_used_as_given():
    docs = render(VALUE_SETS["fixed-replicas-existing-secrets"])
    assert docs["Deployment/rel-hayhooks"]["spec"]["replicas"] == 3
    assert not any(
        k.startswith(("PersistentVolumeClaim/", "Secret/", "HorizontalPodAutoscaler/")) for k in docs
    )
    assert not any(k.startswith(("PodDisruptionBudget/", "ServiceAccount/")) for k in docs)
    pod = docs["Deployment/rel-hayhooks"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["pipelines"]["persistentVolumeClaim"][
        "claimName"
    ] == "shared-nfs"
    assert env_of(docs)["HAYHOOKS_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "ops-token", "key": "token"}}
    assert container(docs)["envFrom"] == [{"secretRef": {"name": "provider-keys"}}]
    assert pod["serviceAccountName"] == "default"


def test_redis_store_needs_no_shared_volume():
    docs = render(VALUE_SETS["redis-store"])
    assert not any(k.startswith("PersistentVolumeClaim/") for k in docs)
    assert docs["Secret/rel-hayhooks"]["stringData"] == {"store-url": "redis://redis:6379/0"}
    assert env_of(docs)["HAYHOOKS_STORE_URL"] == {
        "secretKeyRef": {"name": "rel-hayhooks", "key": "store-url"}
    }
    volumes = {v["name"]: v for v in docs["Deployment/rel-hayhooks"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pipelines"] == {"name": "pipelines", "emptyDir": {}}  # the pod's local copy


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"store": {"type": "nfs"}}, "store.type must be `volume` or `redis`"),
        ({"store": {"type": "redis"}}, "store.type=redis needs store.redis.url"),
    ],
)
def test_bad_values_fail_with_a_clear_message(values, message):
    with pytest.raises(helm.HelmError, match=message.replace(".", r"\.").replace("`", "`")):
        render(values)
