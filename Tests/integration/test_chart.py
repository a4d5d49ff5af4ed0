"""The Helm chart (k8s/chart), the one source of the Kubernetes manifests, checked offline with
Helm's own engine (helmtool.py, through helm-python-sdk in .tools/venv): strict lint, every shipped
values file rendered and validated (kubernetes-validate --strict, checkov), the schema's refusals,
the values table of the docs, the plain manifests equal to the rendered defaults, the AWS and
external-Redis shapes, generated Secrets, the helm test pod, and the Argo CD objects."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import KEY_ADMIN, ROOT, checkov, free_port, wait_for
from test_sentinel import free_block
from valuesmerge import helm_merge

VENV = ROOT / ".tools" / "venv" / "bin"
CHART = ROOT / "k8s" / "chart"
K8S_VERSION = "1.35.0"  # infra/variables.tf kubernetes_version (a test keeps them equal)
PROFILES = ["values-ingress-nginx.yaml", "values-aws.yaml"]


def helm(*args, chart=None):
    env = {**os.environ, "HELMTOOL_CHART": str(chart)} if chart else None
    out = subprocess.run([str(VENV / "python"), str(ROOT / "Tests" / "integration" / "helmtool.py"), *args],
                         capture_output=True, text=True, timeout=120, env=env)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else out.stderr


def render(values=None, release="counter-api"):
    code, out = helm("render", json.dumps(values or {}), release, "counter-api")
    assert code == 0, out
    return out


def objects(rendered, hooks=False):
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt") or ("/templates/tests/" in path and not hooks):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs, kind, name=None):
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def values_file(name):
    return yaml.safe_load((CHART / name).read_text())


# What an operator sets before the AWS profile and the production values render (the chart refuses
# their placeholders): a certificate and the registry Terraform made.
OPERATOR = {"ingress": {"aws": {"certificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/4f0c2a91-5e7d-4c1b-9a3e-2d6f8b0c1e57"}},
            "image": {"app": {"repository": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/counter-fcgi"},
                      "nginx": {"repository": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/counter-nginx"}}}


def container(docs, name):
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value") for e in c["env"]}


def validate_strictly(docs, path):
    """kubernetes-validate --strict and checkov (no failed check) on a rendering."""
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    out = subprocess.run([str(VENV / "kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION, str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    failed, passed = checkov("kubernetes", "-f", path)
    assert failed == [] and passed > 50, failed


def test_chart_lints_strictly_without_a_warning():
    code, report = helm("lint")
    assert code == 0 and report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]


def test_plain_manifests_are_the_rendered_defaults():
    out = subprocess.run([str(VENV / "python"), str(ROOT / "scripts" / "render-manifests.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # And `kubectl apply -k k8s` (no flag) gives the same objects, plus the namespace.
    kustomized = subprocess.run(["kubectl", "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, timeout=60)
    assert kustomized.returncode == 0, kustomized.stderr
    applied = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(kustomized.stdout) if d}
    chart = {(d["kind"], d["metadata"]["name"]): d for d in objects(render())}
    assert set(applied) == set(chart) | {("Namespace", "counter-api")}
    for key, obj in chart.items():
        mine = applied[key]
        assert {k: v for k, v in mine.items() if k != "metadata"} == {k: v for k, v in obj.items() if k != "metadata"}, key
        assert mine["metadata"].get("labels") == obj["metadata"].get("labels"), key
        assert mine["metadata"].get("annotations") == obj["metadata"].get("annotations"), key
        assert mine["metadata"]["namespace"] == "counter-api"


def test_nothing_in_k8s_is_a_copy_of_nginx_config():
    # nginx's templates come with its image; the manifests carry settings only.
    for path in (ROOT / "k8s").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".conf", ".sh"):
            text = path.read_text()
            assert "fastcgi_pass" not in text and "limit_req_zone" not in text, path


@pytest.mark.parametrize("profile", [None, *PROFILES, "env/production.yaml"])
def test_every_values_file_renders_validates_and_passes_checkov(tmp, profile):
    values = values_file(profile) if profile else {}
    if profile == "env/production.yaml":
        values = helm_merge(values_file("values-aws.yaml"), values)
    if profile in ("values-aws.yaml", "env/production.yaml"):
        values = helm_merge(values, OPERATOR)
    code, result = helm("validate", json.dumps(values))
    assert code == 0 and result["ok"], result
    validate_strictly(objects(render(values), hooks=True), tmp / "rendered.yaml")


@pytest.mark.parametrize("values,where", [
    ({"replicaCuont": 3}, "'replicaCuont' not allowed"),
    ({"app": {"threads": "16"}}, "/app/threads"),
    ({"app": {"treads": 16}}, "'treads' not allowed"),
    ({"nginx": {"rateLimits": {"perKey": "fast"}}}, "/nginx/rateLimits/perKey"),
    ({"redis": {"mode": "replicated"}}, "/redis/mode"),
    ({"ingress": {"aws": {"sslPolicy": "ELBSecurityPolicy-2016-08"}}}, "/ingress/aws/sslPolicy"),
    ({"image": {"app": {"digest": "sha256:abc"}}}, "/image/app/digest"),
    ({"monitoring": {"enabled": True}}, "'enabled' not allowed"),
])
def test_schema_rejects_unknown_keys_and_wrong_types(values, where):
    code, result = helm("validate", json.dumps(values))
    assert code == 0 and not result["ok"] and where in result["error"], result


def schema_leaves(node, path=""):
    props = node.get("properties")
    if node.get("type") == "object" and props and not path.endswith("resources"):
        return [leaf for key, sub in props.items() for leaf in schema_leaves(sub, f"{path}.{key}" if path else key)]
    return [path]


def test_values_doc_documents_every_value_and_nothing_else():
    schema = json.loads((CHART / "values.schema.json").read_text())
    documented = re.findall(r"^\| `([a-zA-Z.]+)` \|", (ROOT / "docs" / "helm-values.md").read_text(), re.M)
    assert sorted(documented) == sorted(schema_leaves(schema))
    assert len(documented) == len(set(documented))
    # Every default in values.yaml is a documented key.
    defaults = values_file("values.yaml")

    def keys(node, path=""):
        if isinstance(node, dict) and node and not path.endswith(("resources", "annotations", "Annotations", "Labels")):
            return [k for key, sub in node.items() for k in keys(sub, f"{path}.{key}" if path else key)]
        return [path]
    assert set(keys(defaults)) <= set(documented), set(keys(defaults)) - set(documented)


def test_aws_profile_is_an_alb_with_acm_tls_and_its_subnets_trusted():
    docs = objects(render(helm_merge(values_file("values-aws.yaml"), OPERATOR)))
    ingress = find(docs, "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb" and "tls" not in ingress["spec"]
    assert notes["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    assert json.loads(notes["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    assert notes["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert notes["alb.ingress.kubernetes.io/ssl-policy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert notes["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert notes["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert notes["alb.ingress.kubernetes.io/healthcheck-path"] == "/livez", "the pod's state, not the shared Redis's"
    assert notes["alb.ingress.kubernetes.io/target-group-attributes"] == "deregistration_delay.timeout_seconds=15"
    assert not any(k.startswith(("cert-manager", "nginx.ingress")) for k in notes)
    nginx = env(container(docs, "nginx"))
    # The ALB's addresses are in infra/'s public subnets (its output PUBLIC_SUBNET_CIDRS): only they
    # may set X-Forwarded-For or reach the pods, not the whole VPC (whose pods could forge it).
    alb_subnets = ["10.0.240.0/24", "10.0.241.0/24", "10.0.242.0/24"]
    assert nginx["REAL_IP_FROM"].split() == alb_subnets and nginx["HEALTH_CHECK_ANY_HOST"] == "true"
    policy = find(docs, "NetworkPolicy", "counter-api-from-ingress")
    sources = policy["spec"]["ingress"][0]["from"]
    assert [s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s] == alb_subnets
    assert not any("namespaceSelector" in s for s in sources), "an ALB in ip mode comes from the VPC, not a namespace"
    code, out = helm("render", json.dumps({"ingress": {"className": "alb"}}))
    assert code == 3 and "ingress.aws.certificateArn is required" in out["helm_error"]


def test_ingress_nginx_profile_is_cert_manager_tls():
    docs = objects(render(values_file("values-ingress-nginx.yaml")))
    ingress = find(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["counter.example.com"], "secretName": "counter-api-tls"}]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert env(container(docs, "nginx"))["HEALTH_CHECK_ANY_HOST"] == "false"


def test_external_redis_has_no_statefulset_and_points_the_app_there():
    docs = objects(render({"redis": {"mode": "external", "external": {"host": "redis.internal.example", "port": 6380}}}))
    assert not any(d["kind"] == "StatefulSet" for d in docs)
    app = env(container(docs, "counter-fcgi"))
    assert app["REDIS_HOST"] == "redis.internal.example" and app["REDIS_PORT"] == "6380"
    egress = find(docs, "NetworkPolicy", "counter-api-to-redis-and-dns")["spec"]["egress"][0]
    assert egress["ports"] == [{"protocol": "TCP", "port": 6380}]
    code, out = helm("render", json.dumps({"redis": {"mode": "external"}}))
    assert code == 3 and "redis.external.host (or redis.external.clusterNodes) is required" in out["helm_error"]


def test_an_external_redis_cluster_is_reached_by_its_seeds():
    seeds = "redis-0.example.internal:6379,redis-1.example.internal:6379, redis-2.example.internal:6380"
    docs = objects(render({"redis": {"mode": "external", "external": {"clusterNodes": seeds}}}))
    app = env(container(docs, "counter-fcgi"))
    assert app["REDIS_CLUSTER_NODES"] == seeds and "REDIS_HOST" not in app and "REDIS_PORT" not in app
    egress = find(docs, "NetworkPolicy", "counter-api-to-redis-and-dns")["spec"]["egress"][0]
    assert egress["ports"] == [{"protocol": "TCP", "port": 6379}, {"protocol": "TCP", "port": 6380}]
    code, out = helm("render", json.dumps({"redis": {"mode": "external", "external": {"clusterNodes": "not a list"}}}))
    assert code != 0, "the schema refuses what is not a host:port list"


def test_settings_images_by_digest_and_names_follow_the_release():
    digest = "sha256:" + "0f" * 32
    docs = objects(render({"host": "api.test.example", "image": {"app": {"digest": digest}},
                           "app": {"threads": 8, "debug": True}, "autoscaling": {"enabled": False}, "replicas": 3},
                          release="prod"))
    deployment = find(docs, "Deployment", "prod-counter-api")
    assert deployment["spec"]["replicas"] == 3
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)
    app = container(docs, "counter-fcgi")
    assert app["image"] == f"localhost/counter-fcgi@{digest}"
    assert env(app)["FCGI_THREADS"] == "8" and env(app)["DEBUG"] == "true"
    assert env(app)["REDIS_HOST"] == "prod-counter-api-redis"
    assert env(container(docs, "nginx"))["SERVER_NAMES"] == "api.test.example localhost"
    assert find(docs, "Ingress")["spec"]["rules"][0]["host"] == "api.test.example"


def test_generated_secrets_are_made_once_and_roll_the_pods():
    values = {"apiKeys": {"existingSecret": ""}, "redis": {"existingSecret": ""}}
    docs = objects(render(values))
    keys, redis = find(docs, "Secret", "counter-api-keys"), find(docs, "Secret", "counter-api-redis-auth")
    assert keys["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    admin = keys["stringData"]["admin-key"]
    assert len(admin) == 32 and keys["stringData"]["api_keys"] == f"{admin} admin generated-admin\n"
    assert len(redis["stringData"]["password"]) == 32 and len(redis["stringData"]["admin-password"]) == 32
    pod = find(docs, "Deployment")["spec"]["template"]
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert volumes == {"api-keys": "counter-api-keys", "redis-password": "counter-api-redis-auth"}
    default_sum = find(objects(render()), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
    assert pod["metadata"]["annotations"]["checksum/secrets"] != default_sum
    assert "kind: Secret" not in (ROOT / "k8s" / "manifests" / "counter-api.yaml").read_text()


def test_the_hpa_owns_the_replica_count():
    # A replica count in the Deployment would reset a scaled-out Deployment on every upgrade.
    assert "replicas" not in find(objects(render()), "Deployment")["spec"]
    fixed = find(objects(render({"autoscaling": {"enabled": False}, "replicas": 4})), "Deployment")
    assert fixed["spec"]["replicas"] == 4
    assert not [d for d in objects(render({"autoscaling": {"enabled": False}, "replicas": 4})) if d["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize("values,message", [
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 4}},
     "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (4)"),
    ({"podDisruptionBudget": {"minAvailable": 3}},
     "podDisruptionBudget.minAvailable (3) must be below the fewest pods the Deployment may run (3, autoscaling.minReplicas)"),
    ({"autoscaling": {"enabled": False}, "replicas": 2},
     "podDisruptionBudget.minAvailable (2) must be below the fewest pods the Deployment may run (2, replicas)"),
    ({"redis": {"mode": "sentinel", "existingSecret": "", "sentinel": {"quorum": 4}}},
     "redis.sentinel.quorum (4) is above redis.sentinel.nodes (3)"),
    ({"redis": {"mode": "sentinel", "existingSecret": "", "sentinel": {"waitReplicas": 3}}},
     "redis.sentinel.waitReplicas (3) needs that many replicas, but 3 nodes have 2"),
    ({"redis": {"standalone": {"maxmemory": "300mb"}}},
     "redis.standalone.resources.limits.memory (448Mi) must be at least twice redis.standalone.maxmemory (300mb)"),
    ({"redis": {"standalone": {"resources": {"limits": {"memory": "300M"}}}}},
     "redis.standalone.resources.limits.memory (300M) must be at least twice redis.standalone.maxmemory (192mb)"),
])
def test_values_that_do_not_fit_together_fail_the_render(values, message):
    code, out = helm("render", json.dumps(values), "counter-api", "counter-api")
    assert code != 0 and message in str(out), out


@pytest.mark.parametrize("values", [
    {"autoscaling": {"enabled": False}, "replicas": 3},
    {"podDisruptionBudget": {"enabled": False}, "autoscaling": {"enabled": False}, "replicas": 1},
    {"redis": {"standalone": {"maxmemory": "1gb", "resources": {"limits": {"memory": "2Gi"}}}}},
    {"redis": {"mode": "external", "external": {"host": "redis.example.internal"}, "standalone": {"maxmemory": "900mb"}}},
])
def test_values_that_fit_together_render(values):
    render(values)


def test_redis_pods_size_sentinel_apart_and_roll_on_a_script_change(tmp):
    docs = sentinel_objects()
    pod = find(docs, "StatefulSet", "counter-api-redis")["spec"]["template"]
    resources = {c["name"]: c["resources"] for c in pod["spec"]["containers"]}
    assert resources["sentinel"] == {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
    assert resources["redis"]["limits"]["memory"] == "448Mi"
    # A change to the start script alone rolls the pods (it is part of the config checksum).
    chart = tmp / "chart"
    shutil.copytree(CHART, chart)
    script = chart / "files" / "redis-node.sh"
    script.write_text(script.read_text() + "# changed\n")
    code, changed = helm("render", json.dumps({"redis": {"mode": "sentinel", "existingSecret": ""}}), "counter-api",
                         "counter-api", chart=chart)
    assert code == 0, changed
    changed_pod = find(objects(changed), "StatefulSet", "counter-api-redis")["spec"]["template"]
    assert changed_pod["metadata"]["annotations"]["checksum/config"] != pod["metadata"]["annotations"]["checksum/config"]


def test_readiness_is_the_pod_s_own_and_stopping_pods_drain_first():
    docs = objects(render())
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    for c in pod["containers"]:
        probe = c["readinessProbe"]
        assert probe.get("httpGet", {}).get("path") != "/health", f"{c['name']}: a Redis blip would empty the Service"
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sleep", "15"]
    assert {c["name"]: c["readinessProbe"]["httpGet"]["path"] for c in pod["containers"]} == {"nginx": "/livez", "counter-fcgi": "/livez"}
    assert pod["terminationGracePeriodSeconds"] >= 15 + 10 + 5, "drain, then the responder's shutdown timeout"
    longer = find(objects(render({"drainSeconds": 40})), "Deployment")["spec"]["template"]["spec"]
    assert longer["terminationGracePeriodSeconds"] == 40 + 15 + 10
    application = yaml.safe_load((ROOT / "k8s" / "argocd" / "application.yaml").read_text())
    labels = application["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
    assert labels["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_scheduling_values_a_platform_sets(tmp):
    values = {"podLabels": {"team": "payments", "app.kubernetes.io/name": "not-this", "helm.sh/chart": "not-this"},
              "nodeSelector": {"kubernetes.io/arch": "arm64"},
              "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "api", "effect": "NoSchedule"}],
              "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                  {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["api"]}]}]}}},
              "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "pool", "whenUnsatisfiable": "DoNotSchedule",
                                             "labelSelector": {"matchLabels": {"team": "payments"}}}],
              "priorityClassName": "business-critical", "imagePullSecrets": ["registry-pull"]}
    docs = objects(render(values))
    pod = find(docs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    assert pod["metadata"]["labels"]["team"] == "payments"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "counter-api", "the chart's selector labels win"
    assert spec["nodeSelector"] == values["nodeSelector"] and spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"] and spec["priorityClassName"] == "business-critical"
    assert spec["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert len(spec["topologySpreadConstraints"]) == 3 and spec["topologySpreadConstraints"][-1]["topologyKey"] == "pool"
    validate_strictly(docs, tmp / "scheduled.yaml")
    defaults = find(objects(render()), "Deployment")["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"} & set(defaults)


def test_values_merge_as_helm_merges():
    merged = helm_merge({"ingress": {"className": "alb", "aws": {"sslPolicy": "p", "scheme": "internal"}}, "keep": 1},
                        {"ingress": {"aws": {"certificateArn": "arn"}}, "keep": None, "list": [1]})
    assert merged == {"ingress": {"className": "alb", "aws": {"sslPolicy": "p", "scheme": "internal", "certificateArn": "arn"}},
                      "list": [1]}


@pytest.mark.parametrize("mode,keys", [("standalone", ["password", "admin-password"]),
                                       ("sentinel", ["password", "admin-password", "sentinel-password"])])
def test_secrets_from_a_store_through_the_external_secrets_operator(mode, keys):
    values = {"externalSecrets": {"enabled": True}, "redis": {"mode": mode}}
    docs = objects(render(values))
    made = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
    assert set(made) == {"counter-api-keys", "counter-api-redis"} and not [d for d in docs if d["kind"] == "Secret"]
    keys_es, redis_es = made["counter-api-keys"]["spec"], made["counter-api-redis"]["spec"]
    assert keys_es["secretStoreRef"] == {"name": "aws-secrets-manager", "kind": "ClusterSecretStore"}
    assert keys_es["target"]["name"] == "counter-api-keys"
    assert keys_es["data"] == [{"secretKey": "api_keys", "remoteRef": {"key": "counter-api/api-keys", "property": "api_keys"}}]
    assert [d["secretKey"] for d in redis_es["data"]] == keys
    # The pods read the Secrets the operator makes, by the same names.
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"counter-api-keys", "counter-api-redis"}
    # Together with generated Secrets it makes no sense: refused.
    code, out = helm("render", json.dumps({"externalSecrets": {"enabled": True}, "apiKeys": {"existingSecret": ""}}))
    assert code != 0 and "externalSecrets.enabled needs apiKeys.existingSecret" in str(out)
    project = yaml.safe_load((ROOT / "k8s" / "argocd" / "appproject.yaml").read_text())
    assert {"group": "external-secrets.io", "kind": "ExternalSecret"} in project["spec"]["namespaceResourceWhitelist"]


@pytest.mark.parametrize("values,message", [
    ({}, "ingress.aws.certificateArn is required with className alb"),
    ({"ingress": {"aws": {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}}},
     "ingress.aws.certificateArn (arn:aws:acm:eu-west-1:123456789012:certificate/abc) is the documentation's example"),
    ({"ingress": {"aws": {"certificateArn": "arn:aws:acm:eu-west-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"}}},
     "is the documentation's example"),
    (helm_merge(OPERATOR, {"image": {"nginx": {"repository": "ghcr.io/example-org/counter-nginx"}}}),
     "image.nginx.repository (ghcr.io/example-org/counter-nginx) is the documentation's example"),
])
def test_placeholders_are_refused_at_render(values, message):
    code, out = helm("render", json.dumps(helm_merge(values_file("values-aws.yaml"), values)), "counter-api", "counter-api")
    assert code != 0 and message in str(out), out


def test_unsigned_images_can_be_refused_by_a_kyverno_policy():
    assert not [d for d in objects(render()) if d["kind"] == "Policy"], "off by default: it needs Kyverno"
    identity = "https://github.com/acme/counter-fcgi/.github/workflows/ci.yml@refs/heads/main"
    docs = objects(render(helm_merge(OPERATOR, {"imagePolicy": {"enabled": True, "identity": identity}})))
    policy = find(docs, "Policy")
    assert policy["metadata"]["namespace"] == "counter-api" and policy["spec"]["validationFailureAction"] == "Enforce"
    rule = policy["spec"]["rules"][0]
    assert rule["match"] == {"any": [{"resources": {"kinds": ["Pod"]}}]}
    verify = rule["verifyImages"][0]
    assert verify["imageReferences"] == [OPERATOR["image"]["app"]["repository"] + "*", OPERATOR["image"]["nginx"]["repository"] + "*"]
    assert verify["verifyDigest"] and verify["mutateDigest"] and verify["required"]
    keyless = verify["attestors"][0]["entries"][0]["keyless"]
    # The same identity and issuer the deploy job's `cosign verify` checks.
    assert keyless == {"subject": identity, "issuer": "https://token.actions.githubusercontent.com",
                       "rekor": {"url": "https://rekor.sigstore.dev"}}
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in workflow
    code, out = helm("render", json.dumps({"imagePolicy": {"enabled": True}}))
    assert code != 0 and "imagePolicy.identity is required" in str(out)
    project = yaml.safe_load((ROOT / "k8s" / "argocd" / "appproject.yaml").read_text())
    assert {"group": "kyverno.io", "kind": "Policy"} in project["spec"]["namespaceResourceWhitelist"]


def test_redis_config_change_restarts_redis():
    first = find(objects(render()), "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    changed = objects(render({"redis": {"standalone": {"appendfsync": "always"}}}))
    assert find(changed, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != first
    assert "appendfsync always" in find(changed, "ConfigMap", "counter-api-redis-config")["data"]["redis.conf"]


def test_monitoring_follows_the_operator_api_and_the_toggles():
    assert not any(d["kind"] in ("PodMonitor", "PrometheusRule") for d in objects(render()))
    docs = objects(render({"monitoring": {"assumeOperatorAPI": True}}))
    rule = find(docs, "PrometheusRule")
    source = yaml.safe_load((CHART / "files" / "alert-rules.yaml").read_text())
    base = "https://github.com/example-org/counter-fcgi/blob/main/"
    for group in source["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                r["annotations"]["runbook_url"] = base + r["annotations"]["runbook_url"]
    assert rule["spec"] == source, "the rules as promtool tests them, with the runbook base in front"
    assert find(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    off = objects(render({"monitoring": {"assumeOperatorAPI": True, "podMonitor": False, "dashboard": False}}))
    assert {d["kind"] for d in off} >= {"PrometheusRule"} and "PodMonitor" not in {d["kind"] for d in off}
    assert not any(d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"] for d in off)


def test_monitoring_fits_a_stock_kube_prometheus_stack_and_any_release():
    values = {"monitoring": {"assumeOperatorAPI": True, "labels": {"release": "kube-prometheus-stack"},
                             "dashboardNamespace": "monitoring", "runbookBaseURL": "https://git.example.net/ops/counter/-/blob/v2/"},
              "autoscaling": {"minReplicas": 5, "maxReplicas": 12}}
    code, out = helm("render", json.dumps(values), "payments", "shop")
    assert code == 0, out
    docs = objects(out)
    for kind in ("PodMonitor", "PrometheusRule"):
        assert find(docs, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["namespace"] == "monitoring" and dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    alerts = {r["alert"]: r for g in find(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"] if "alert" in r}
    below = alerts["CounterAPIBelowMinReplicas"]
    assert below["expr"] == 'kube_deployment_status_replicas_available{namespace="shop", deployment="payments-counter-api"} < 5'
    assert "(5)" in below["annotations"]["summary"]
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    for name, rule in alerts.items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"https://git.example.net/ops/counter/-/blob/v2/docs/runbooks.md#{name.lower()}", url
        assert f"\n## {name}\n" in runbooks, f"docs/runbooks.md has no section for {name}"


def test_notes_say_what_to_check_next():
    notes = render()["counter-api/templates/NOTES.txt"]
    assert "kubectl -n counter-api rollout status deploy/counter-api" in notes and "helm test counter-api" in notes
    assert "metrics-server" in notes and "StorageClass" in notes
    operator = render({"monitoring": {"assumeOperatorAPI": True}})["counter-api/templates/NOTES.txt"]
    assert "set monitoring.labels to what your Prometheus selects" in operator
    labelled = render({"monitoring": {"assumeOperatorAPI": True, "labels": {"release": "kps"}}})["counter-api/templates/NOTES.txt"]
    assert "set monitoring.labels" not in labelled and "PodMonitor and PrometheusRule made" in labelled


def test_helm_test_pod_checks_health_through_the_service():
    rendered = render()
    test = next(yaml.safe_load(text) for path, text in rendered.items() if "/templates/tests/" in path)
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = test["spec"]["containers"][0]["args"][0]
    assert "/dev/tcp/counter-api/80" in script and "GET /health" in script and '"redis":"connected"' in script
    assert "counter-api/test-of" in test["metadata"]["labels"]
    policy = find(objects(rendered), "NetworkPolicy", "counter-api-from-ingress")
    assert {"podSelector": {"matchLabels": {"counter-api/test-of": "counter-api"}}} in policy["spec"]["ingress"][0]["from"]
    assert "helm test counter-api" in rendered["counter-api/templates/NOTES.txt"]


def test_argocd_application_and_project():
    app = yaml.safe_load((ROOT / "k8s" / "argocd" / "application.yaml").read_text())
    project = yaml.safe_load((ROOT / "k8s" / "argocd" / "appproject.yaml").read_text())
    source = app["spec"]["source"]
    assert (ROOT / source["path"] / "Chart.yaml").exists()
    for name in source["helm"]["valueFiles"]:
        assert (ROOT / source["path"] / name).exists(), name
    committed = helm_merge(*(values_file(name) for name in source["helm"]["valueFiles"]))
    code, out = helm("render", json.dumps(committed), source["helm"]["releaseName"], "counter-api")
    assert code != 0 and "is the documentation's example" in str(out), "placeholders are refused, not deployed"
    merged = helm_merge(committed, OPERATOR)
    code, result = helm("validate", json.dumps(merged))
    assert code == 0 and result["ok"], result
    docs = objects(render(merged, release=source["helm"]["releaseName"]))
    # What Argo CD deploys is the AWS profile with production's settings on top, not in place of it.
    ingress = find(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    notes = ingress["metadata"]["annotations"]
    assert notes["alb.ingress.kubernetes.io/certificate-arn"] == OPERATOR["ingress"]["aws"]["certificateArn"]
    assert notes["alb.ingress.kubernetes.io/ssl-policy"] == values_file("values-aws.yaml")["ingress"]["aws"]["sslPolicy"]
    assert find(docs, "StatefulSet")["metadata"]["name"] == "counter-api-redis" and any(
        c["name"] == "sentinel" for c in find(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"])
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in policy["syncOptions"] and "RespectIgnoreDifferences=true" in policy["syncOptions"]
    assert policy["retry"]["limit"] >= 3 and policy["retry"]["backoff"]["factor"] >= 2
    assert app["spec"]["ignoreDifferences"] == [{"group": "apps", "kind": "Deployment", "name": "counter-api",
                                                  "jsonPointers": ["/spec/replicas"]}]
    assert app["spec"]["destination"]["namespace"] == "counter-api"
    # The project admits exactly this repository, namespace and the kinds the chart makes.
    assert project["spec"]["sourceRepos"] == [source["repoURL"]]
    assert project["spec"]["destinations"] == [app["spec"]["destination"]]
    allowed = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    every = objects(render(helm_merge(merged, {"monitoring": {"assumeOperatorAPI": True},
                                               "apiKeys": {"existingSecret": ""}, "redis": {"existingSecret": ""}})))
    made = {(d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "", d["kind"]) for d in every}
    assert made <= allowed, made - allowed
    # Sync waves: Redis before the API.
    waves = {d["kind"]: int(d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0")) for d in docs}
    assert waves["StatefulSet"] < waves["Deployment"]


def test_gitops_pinning_changes_only_the_digests_and_renders(tmp):
    source = CHART / "env" / "production.yaml"
    pinned = tmp / "production.yaml"
    pinned.write_text(source.read_text())
    app, nginx = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32
    env = {"PATH": "/usr/bin:/bin", "APP_REPOSITORY": "ghcr.io/acme/counter-fcgi", "APP_DIGEST": app,
           "NGINX_REPOSITORY": "ghcr.io/acme/counter-nginx", "NGINX_DIGEST": nginx}
    out = subprocess.run(["python3", str(ROOT / "scripts" / "pin-images.py"), str(pinned)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    before, after = source.read_text().splitlines(), pinned.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and len(changed) == 4, changed
    assert all(re.match(r"^    (repository|digest): ", b) for _, b in changed)
    values = helm_merge(values_file("values-aws.yaml"), yaml.safe_load(pinned.read_text()),
                        {"ingress": OPERATOR["ingress"]})
    images = {c["name"]: c["image"] for c in find(objects(render(values)), "Deployment")["spec"]["template"]["spec"]["containers"]}
    assert images == {"counter-fcgi": f"ghcr.io/acme/counter-fcgi@{app}", "nginx": f"ghcr.io/acme/counter-nginx@{nginx}"}
    bad = subprocess.run(["python3", str(ROOT / "scripts" / "pin-images.py"), str(pinned)],
                         env={**env, "APP_DIGEST": "latest"}, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "is not sha256:<64 hex>" in bad.stderr
    # The Redis mirror: pinned the same way, and rendered by digest from the project's registry.
    redis = "sha256:" + "ef" * 32
    pinned.write_text(source.read_text())
    ecr = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
    out = subprocess.run(["python3", str(ROOT / "scripts" / "pin-images.py"), str(pinned)], capture_output=True, text=True,
                         env={**env, "REDIS_REPOSITORY": f"{ecr}/redis", "REDIS_DIGEST": redis}, timeout=30)
    assert out.returncode == 0 and "app, nginx, redis pinned" in out.stderr, out.stderr
    values = helm_merge(values_file("values-aws.yaml"), yaml.safe_load(pinned.read_text()), {"ingress": OPERATOR["ingress"]})
    redis_images = {c["image"] for d in objects(render(values)) if d["kind"] == "StatefulSet"
                    for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"].get("initContainers", [])
                    if "redis" in c["image"]}
    assert redis_images == {f"{ecr}/redis@{redis}"}, redis_images


def test_workflow_deploys_by_push_or_by_gitops():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    # GitOps unless DEPLOY_MODE says push (infra/'s deploy_mode, whose default is gitops too).
    assert "vars.DEPLOY_MODE == 'push'" in jobs["deploy"]["if"]
    gitops = jobs["gitops"]
    assert "vars.DEPLOY_MODE != 'push'" in gitops["if"] and gitops["permissions"] == {"contents": "write"}
    steps = " ".join(step.get("run", "") for step in gitops["steps"])
    app = yaml.safe_load((ROOT / "k8s" / "argocd" / "application.yaml").read_text())
    pinned = f"{app['spec']['source']['path']}/{app['spec']['source']['helm']['valueFiles'][-1]}"
    assert f"scripts/pin-images.py {pinned}" in steps and f"git add {pinned}" in steps
    # Redis comes from the project's registry by digest: mirrored once per digest, then pinned.
    mirror = next(s for s in jobs["images"]["steps"] if s.get("id") == "redis")
    assert mirror["if"] == "github.event_name == 'push'" and "skopeo copy --all --preserve-digests" in mirror["run"]
    assert "aws ecr describe-images --repository-name redis" in mirror["run"]
    assert jobs["images"]["outputs"]["redis"] == "${{ steps.redis.outputs.digest }}"
    pin_env = next(s for s in gitops["steps"] if "pin-images.py" in s.get("run", ""))["env"]
    assert pin_env["REDIS_REPOSITORY"] == "${{ vars.ECR_REDIS_REPOSITORY }}" and pin_env["REDIS_DIGEST"] == "${{ needs.images.outputs.redis }}"
    deploy_env = next(s for s in jobs["deploy"]["steps"] if s.get("run") == "scripts/deploy.sh deploy")["env"]
    assert deploy_env["REDIS_IMAGE"].endswith("/redis@${{ needs.images.outputs.redis }}")
    assert "id-token" not in json.dumps(gitops), "the GitOps job needs no cloud credentials"
    lint = " ".join(step.get("run", "") for step in jobs["images"]["steps"])
    assert "helm lint --strict k8s/chart" in lint and "LoadRestrictionsNone" not in lint


def test_workflow_on_day_two():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    # Signed once per digest (a re-run must not push a second signature to an immutable tag), and
    # verified before any deploy job sees the digests.
    sign = next(s for s in jobs["images"]["steps"] if "cosign sign" in s.get("run", ""))
    script = sign["run"]
    assert "verify || cosign sign --yes" in script and script.index("verify ||") < script.index("cosign sign")
    assert "--certificate-identity" in script and "exit 1" in script
    assert set(jobs["gitops"]["needs"]) >= {"images"}
    # GitOps: a concurrent push is rebased onto, a bounded number of times.
    push = next(s for s in jobs["gitops"]["steps"] if "git push" in s.get("run", ""))["run"]
    assert "git pull --rebase origin main" in push and "for attempt in 1 2 3 4 5" in push
    # Push mode: a failed smoke test rolls back.
    names = [s.get("name", "") for s in jobs["deploy"]["steps"]]
    rollback = jobs["deploy"]["steps"][names.index("Roll back when the smoke test failed")]
    assert rollback["if"] == "failure()" and rollback["run"] == "scripts/deploy.sh rollback"
    assert names.index("Smoke test through the ingress") < names.index("Roll back when the smoke test failed")


def fake_tools(tmp, helm_upgrade_status=0, namespace_answer=""):
    """helm and kubectl that record their arguments (one line per call) and succeed, except
    `helm upgrade` with `helm_upgrade_status`, and `kubectl get namespace` with `namespace_answer`
    (an error message, status 1) when given; `helm history` shows a deployed release."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    log = tmp / "calls.log"
    for tool in ("helm", "kubectl"):
        script = bin_dir / tool
        status = f'[ "$1" = upgrade ] && exit {helm_upgrade_status}\n' if tool == "helm" else ""
        history = 'case "$*" in *history*) echo "1 deployed counter-api-1.0.0";; esac\n' if tool == "helm" else ""
        if tool == "kubectl" and namespace_answer:
            (tmp / "namespace-answer").write_text(namespace_answer + "\n")
            history = f'case "$*" in "get namespace counter-api") cat "{tmp / "namespace-answer"}" >&2; exit 1;; esac\n'
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n{history}{status}exit 0\n')
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "USE_HELM": "1", "HOST": "api.example.org",
            "API_KEY": "tk-admin-Q7x9v2LmP4sR8wYz", "TIMEOUT": "60s"}, log


def test_deploy_script_rolls_back(tmp):
    env, log = fake_tools(tmp)
    out = subprocess.run(["scripts/deploy.sh", "rollback"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert "helm -n counter-api rollback counter-api 0 --wait --timeout 60s" in calls
    assert "kubectl -n counter-api rollout status deployment/counter-api --timeout=60s" in calls


def test_a_failed_upgrade_is_rolled_back(tmp):
    env, log = fake_tools(tmp, helm_upgrade_status=1)
    out = subprocess.run(["scripts/deploy.sh", "deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "the upgrade failed" in out.stderr
    calls = log.read_text().splitlines()
    upgrade = next(i for i, c in enumerate(calls) if c.startswith("helm upgrade --install counter-api"))
    assert calls[upgrade + 2:upgrade + 3] == ["helm -n counter-api rollback counter-api 0 --wait --timeout 60s"], calls


@pytest.mark.parametrize("answer,made", [
    ('Error from server (NotFound): namespaces "counter-api" not found', True),
    ('Error from server (Forbidden): namespaces "counter-api" is forbidden: User "deployer" cannot get resource', False),
])
def test_deploy_makes_the_namespace_only_when_missing(tmp, answer, made):
    """The push-mode deploy role may act only inside its namespace (k8s/platform/deploy-access): it
    cannot read namespaces, and must not try to make one."""
    env, log = fake_tools(tmp, namespace_answer=answer)
    out = subprocess.run(["scripts/deploy.sh", "secrets"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ("kubectl apply -f k8s/namespace.yaml" in log.read_text().splitlines()) is made
    (tmp / "other").mkdir()
    unknown = subprocess.run(["scripts/deploy.sh", "secrets"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env=fake_tools(tmp / "other", namespace_answer="Unable to connect to the server")[0])
    assert unknown.returncode == 1 and "cannot tell whether namespace counter-api exists" in unknown.stderr


def deploy_access():
    return list(yaml.safe_load_all((ROOT / "k8s" / "platform" / "deploy-access" / "role.yaml").read_text()))


def test_the_push_deploy_role_may_manage_exactly_what_the_chart_makes():
    role, binding = deploy_access()
    project = yaml.safe_load((ROOT / "k8s" / "argocd" / "appproject.yaml").read_text())
    writable = {(group, resource) for rule in role["rules"] if "create" in rule["verbs"]
                for group in rule["apiGroups"] for resource in rule["resources"]}
    # The Argo CD project lists the kinds the chart makes (a test above keeps it so): the same set.
    plural = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets",
              "HorizontalPodAutoscaler": "horizontalpodautoscalers", "Policy": "policies"}
    kinds = {(k["group"], plural.get(k["kind"], k["kind"].lower() + "s")) for k in project["spec"]["namespaceResourceWhitelist"]}
    assert writable == kinds, writable ^ kinds
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "counter-api"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "counter-api:deployers"}]
    infra = (ROOT / "infra" / "access.tf").read_text()
    assert 'kubernetes_groups = ["counter-api:deployers"]' in infra
    namespace = yaml.safe_load((ROOT / "k8s" / "platform" / "deploy-access" / "namespace.yaml").read_text())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    script = (ROOT / "scripts" / "setup-aws.sh").read_text()
    assert "push-mode.yaml" in script and "application.yaml" in script


def sentinel_objects():
    return objects(render({"redis": {"mode": "sentinel", "existingSecret": ""}}))


def test_sentinel_mode_renders_three_redis_with_sentinels_and_the_app_follows_them(tmp):
    docs = sentinel_objects()
    sts = find(docs, "StatefulSet", "counter-api-redis")
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == "counter-api-redis-nodes"
    pod = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["redis", "sentinel"]
    assert pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert find(docs, "Service", "counter-api-redis-nodes")["spec"]["publishNotReadyAddresses"] is True
    assert find(docs, "PodDisruptionBudget", "counter-api-redis")["spec"]["maxUnavailable"] == 1
    app = env(container(docs, "counter-fcgi"))
    assert "REDIS_HOST" not in app and app["REDIS_WAIT_REPLICAS"] == "1"
    assert app["REDIS_SENTINELS"].split(",") == [
        f"counter-api-redis-{i}.counter-api-redis-nodes.counter-api.svc:26379" for i in range(3)]
    assert "sentinel-password" in find(docs, "Secret", "counter-api-redis-auth")["stringData"]
    # The app reaches Redis and Sentinel; the Redis pods reach each other (replication, gossip).
    to_redis = find(docs, "NetworkPolicy", "counter-api-to-redis-and-dns")["spec"]["egress"][0]["ports"]
    assert {p["port"] for p in to_redis} == {6379, 26379}
    peers = find(docs, "NetworkPolicy", "counter-api-redis-from-api")["spec"]["ingress"]
    assert {p["port"] for rule in peers for p in rule["ports"]} == {6379, 26379}
    assert find(docs, "NetworkPolicy", "counter-api-redis-to-peers-and-dns")
    # Every rendering of this mode passes the validators too.
    validate_strictly(docs, tmp / "sentinel.yaml")


@pytest.mark.parametrize("pod,sentinel_answer,expected_primary", [
    ("counter-api-redis-0", "", None),                      # first start: the first pod is the primary
    ("counter-api-redis-1", "", "counter-api-redis-0"),     # first start: the others replicate it
    ("counter-api-redis-0", "counter-api-redis-2", "counter-api-redis-2"),  # the old primary rejoins as a replica
])
def test_sentinel_pods_start_as_primary_or_replica_as_the_sentinels_say(tmp, pod, sentinel_answer, expected_primary):
    """The pods' start script (files/redis-node.sh) with the pod's own environment, run here with a
    stand-in redis-cli (what the other Sentinels answer); the Redis configuration it writes is then
    started by the real redis-server."""
    docs = sentinel_objects()
    cm = find(docs, "ConfigMap", "counter-api-redis-config")
    assert cm["data"]["redis-node.sh"] == (CHART / "files" / "redis-node.sh").read_text()
    spec = find(docs, "StatefulSet", "counter-api-redis")["spec"]["template"]["spec"]["containers"][0]
    config, secrets_dir, run_dir, bin_dir = tmp / "config", tmp / "secret", tmp / "run", tmp / "bin"
    for d in (config, secrets_dir, run_dir, bin_dir):
        d.mkdir()
    for name, text in cm["data"].items():
        (config / name).write_text(text)
    for name in ("password", "admin-password", "sentinel-password"):
        (secrets_dir / name).write_text(f"{name}-value\n")
    domain = "counter-api-redis-nodes.counter-api.svc"
    answer = f"{sentinel_answer}.{domain}" if sentinel_answer else ""
    (bin_dir / "redis-cli").write_text(f"#!/bin/sh\n[ -n '{answer}' ] && printf '%s\\n6379\\n' '{answer}'\nexit 0\n")
    (bin_dir / "redis-server").write_text("#!/bin/sh\necho \"started $*\"\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    # The pod's environment, as Kubernetes expands it, with the mounts moved into this temp dir.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "POD_NAME": pod}
    moved = {"/etc/counter-redis": str(config), "/etc/redis-secret": str(secrets_dir), "/run/redis": str(run_dir)}
    for item in spec["env"]:
        if "value" in item:
            value = item["value"].replace("$(POD_NAME)", pod)
            for old, new in moved.items():
                value = value.replace(old, new)
            env[item["name"]] = value
    for role in ("redis", "sentinel"):
        out = subprocess.run(["sh", str(config / "redis-node.sh"), role], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.startswith("started"), out.stderr
    redis_conf = (run_dir / "redis.conf").read_text()
    sentinel_conf = (run_dir / "sentinel.conf").read_text()
    primary = f"{expected_primary or pod}.{domain}"
    assert f"sentinel monitor counter {primary} 6379 2" in sentinel_conf
    assert f"sentinel announce-ip {pod}.{domain}" in sentinel_conf and "requirepass sentinel-password-value" in sentinel_conf
    assert ("replicaof" in redis_conf) == (expected_primary is not None)
    if expected_primary:
        assert f"replicaof {primary} 6379" in redis_conf
    assert "+role +wait" in redis_conf and f"replica-announce-ip {pod}.{domain}" in redis_conf
    # The written configuration is one the real redis-server takes (with a folder of ours for /data).
    port = free_port()
    (tmp / "check.conf").write_text(redis_conf.replace("dir /data", f"dir {tmp}"))
    server = subprocess.Popen(["redis-server", str(tmp / "check.conf"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        auth = {"REDISCLI_AUTH": "admin-password-value", "PATH": "/usr/bin:/bin"}
        wait_for(lambda: subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(port), "PING"], env=auth,
                                        capture_output=True, text=True).stdout.strip() == "PONG", what="redis-server")
        role = subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(port), "ROLE"], env=auth,
                              capture_output=True, text=True).stdout.split()[0]
        assert role == ("slave" if expected_primary else "master")
        app = subprocess.run(["redis-cli", "--no-auth-warning", "--user", "counter", "-p", str(port), "ROLE"],
                             env={**auth, "REDISCLI_AUTH": "password-value"}, capture_output=True, text=True).stdout
        assert "NOPERM" not in app, "the app's user may ask ROLE"
    finally:
        server.kill()
        server.wait(timeout=10)


def cluster_objects(**cluster):
    return objects(render({"redis": {"mode": "cluster", "existingSecret": "", "cluster": cluster}}))


def test_cluster_mode_renders_the_nodes_a_forming_job_and_the_app_follows_them(tmp):
    docs = cluster_objects()
    sts = find(docs, "StatefulSet", "counter-api-redis")
    assert sts["spec"]["replicas"] == 9 and sts["spec"]["podManagementPolicy"] == "Parallel"
    pod = sts["spec"]["template"]["spec"]
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert {p["containerPort"] for p in pod["containers"][0]["ports"]} == {6379, 16379}
    service = find(docs, "Service", "counter-api-redis-nodes")["spec"]
    assert service["publishNotReadyAddresses"] is True and {p["port"] for p in service["ports"]} == {6379, 16379}
    assert find(docs, "PodDisruptionBudget", "counter-api-redis")["spec"]["maxUnavailable"] == 1
    nodes = [f"counter-api-redis-{i}.counter-api-redis-nodes.counter-api.svc:6379" for i in range(9)]
    app = env(container(docs, "counter-fcgi"))
    assert "REDIS_HOST" not in app and app["REDIS_CLUSTER_NODES"].split(",") == nodes and app["REDIS_WAIT_REPLICAS"] == "1"
    job = find(docs, "Job", "counter-api-redis-form")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert env(job["spec"]["template"]["spec"]["containers"][0])["NODES"].split() == nodes
    # The nodes reach each other on both ports, the Job reaches them, and nothing else is opened.
    ingress = find(docs, "NetworkPolicy", "counter-api-redis-from-api")["spec"]["ingress"]
    assert [sorted(p["port"] for p in rule["ports"]) for rule in ingress] == [[6379], [6379, 16379], [6379]]
    assert ingress[2]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis-form"
    peers = find(docs, "NetworkPolicy", "counter-api-redis-to-peers-and-dns")["spec"]["egress"][0]["ports"]
    assert {p["port"] for p in peers} == {6379, 16379}
    assert find(docs, "NetworkPolicy", "counter-api-redis-form-to-nodes-and-dns")
    validate_strictly(docs, tmp / "cluster.yaml")
    # Fewer than three primaries (the schema: a majority of primaries fails one over, and
    # redis-cli forms no cluster with fewer), or more replicas to wait for than a shard has.
    for values, message in [({"primaries": 2}, "/redis/cluster/primaries': minimum: got 2, want 3"),
                            ({"replicasPerPrimary": 0}, "redis.cluster.waitReplicas (1) needs that many replicas per primary")]:
        code, out = helm("render", json.dumps({"redis": {"mode": "cluster", "existingSecret": "", "cluster": values}}),
                         "counter-api", "counter-api")
        assert code != 0 and message in str(out), out
    small = cluster_objects(primaries=4, replicasPerPrimary=1, antiAffinity="required")
    assert find(small, "StatefulSet", "counter-api-redis")["spec"]["replicas"] == 8
    assert find(small, "StatefulSet", "counter-api-redis")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert env(container(small, "counter-fcgi"))["REDIS_CLUSTER_NODES"].count(",") == 7


class ChartClusterNodes:
    """The chart's Redis Cluster pods, run here: the rendered ConfigMap's start script with the
    StatefulSet's environment, real redis-servers on loopback (ports instead of pod names), and the
    forming Job's script with its environment. One replica per primary: six servers, not nine."""

    def __init__(self, tmp, count=6):
        docs = cluster_objects(replicasPerPrimary=1)
        self.cm = find(docs, "ConfigMap", "counter-api-redis-config")["data"]
        self.spec = find(docs, "StatefulSet", "counter-api-redis")["spec"]["template"]["spec"]["containers"][0]
        self.job = env(find(docs, "Job", "counter-api-redis-form")["spec"]["template"]["spec"]["containers"][0])
        self.tmp, self.count = tmp, count
        self.port = free_block(count, low=12000, shifted=10000)
        self.config, self.secrets = tmp / "config", tmp / "secret"
        for d in (self.config, self.secrets):
            d.mkdir()
        for name, text in self.cm.items():
            (self.config / name).write_text(text)
        # Loopback only, here (the pods listen on their pod network).
        (self.config / "redis.conf").write_text(self.cm["redis.conf"] + "bind 127.0.0.1 -::1\n")
        for name in ("password", "admin-password"):
            (self.secrets / name).write_text(f"{name}-value\n")
        self.procs = {}

    def nodes(self):
        return [f"localhost:{self.port + i}" for i in range(self.count)]

    def start(self, i):
        data, run = self.tmp / f"data-{i}", self.tmp / f"run-{i}"
        data.mkdir(exist_ok=True)
        run.mkdir(exist_ok=True)
        moved = {"/etc/counter-redis": str(self.config), "/etc/redis-secret": str(self.secrets), "/run/redis": str(run),
                 "/data": str(data)}
        node_env = {"PATH": "/usr/bin:/bin", "PORT": str(self.port + i)}
        for item in self.spec["env"]:
            if "value" in item:
                value = item["value"]
                for old, new in moved.items():
                    value = value.replace(old, new)
                node_env[item["name"]] = value
        node_env["SELF"] = "localhost"  # the pod's name on the headless Service, here
        self.procs[i] = subprocess.Popen(["sh", str(self.config / "redis-cluster-node.sh")], env=node_env,
                                         stdout=open(run / "out.log", "w"), stderr=subprocess.STDOUT)

    def stop(self, i):
        proc = self.procs.pop(i)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def form(self):
        job_env = {**self.job, "PATH": "/usr/bin:/bin", "NODES": " ".join(self.nodes()), "WAIT_SECONDS": "60",
                   "ADMIN_PASSWORD_FILE": str(self.secrets / "admin-password")}
        return subprocess.run(["sh", str(self.config / "redis-cluster-form.sh")], env=job_env, capture_output=True,
                              text=True, timeout=120)

    def cli(self, i, *args):
        return subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(self.port + i), *args],
                              env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": "admin-password-value"},
                              capture_output=True, text=True, timeout=10).stdout

    def close(self):
        for i in list(self.procs):
            self.stop(i)


@pytest.fixture
def chart_cluster(tmp):
    nodes = ChartClusterNodes(tmp)
    try:
        yield nodes
    finally:
        nodes.close()


def test_cluster_pods_form_once_serve_counters_and_rejoin_after_their_addresses_change(chart_cluster, start_stack):
    nodes = chart_cluster
    for i in range(nodes.count):
        nodes.start(i)
    formed = nodes.form()
    assert formed.returncode == 0 and "forming: 6 nodes, 1 replica(s) per primary" in formed.stderr, formed.stderr
    assert "cluster_state:ok" in nodes.cli(0, "CLUSTER", "INFO")
    # Clients are told names, not addresses.
    assert all(line.split()[1].endswith(",localhost") for line in nodes.cli(0, "CLUSTER", "NODES").splitlines())
    # The Job again (every upgrade): it checks and changes nothing.
    again = nodes.form()
    assert again.returncode == 0 and "formed already" in again.stderr and "forming" not in again.stderr, again.stderr

    stack = start_stack(responder_env={"REDIS_HOST": "", "REDIS_CLUSTER_NODES": ",".join(nodes.nodes()),
                                       "REDIS_USERNAME": "counter", "REDIS_PASSWORD": "password-value",
                                       "REDIS_WAIT_REPLICAS": nodes.job["REPLICAS"]})
    names = [f"pod:{i}" for i in range(30)]
    for n, name in enumerate(names):
        reply = stack.curl("POST", f"/v1/counters/{name}/increment?by={n + 1}", KEY_ADMIN)
        assert reply.status == 200, reply
    holders = {i for i in range(nodes.count) if int(nodes.cli(i, "DBSIZE") or 0) > 0 and "role:master" in nodes.cli(i, "INFO", "replication")}
    assert len(holders) == 3, "the counters are spread over the three primaries"

    # Every pod restarted with a new address: here, each node's record of the others is made stale
    # (127.0.0.9, where nothing listens); the start script takes the addresses from the names again.
    for i in range(nodes.count):
        nodes.stop(i)
    for i in range(nodes.count):
        conf = nodes.tmp / f"data-{i}" / "nodes.conf"
        conf.write_text(conf.read_text().replace("127.0.0.1:", "127.0.0.9:"))
    for i in range(nodes.count):
        nodes.start(i)

    def linked(i):
        # Every node seen at its real address, its link up (a node's own view of "ok" right after a
        # restart is only its saved state).
        lines = nodes.cli(i, "CLUSTER", "NODES").splitlines()
        return len(lines) == nodes.count and all(
            " 127.0.0.1:" in line and line.split()[7] == "connected" and "fail" not in line.split()[2] for line in lines)
    wait_for(lambda: all(linked(i) for i in range(nodes.count)), timeout=30, what="the restarted nodes to find each other")
    assert "127.0.0.9" not in (nodes.tmp / "data-0" / "nodes.conf").read_text()
    # The app's connections all broke meanwhile: each worker is back within its reconnect backoff.
    for n, name in enumerate(names):
        replies = []
        wait_for(lambda: replies.append(stack.curl("GET", f"/v1/counters/{name}", KEY_ADMIN)) or replies[-1].status != 503,
                 timeout=10, what=f"{name} to be read again")
        assert replies[-1].status == 200 and replies[-1].json()["value"] == n + 1, replies[-1]
    # And writes, each acknowledged by its shard's replica (WAIT 1), once the replicas are back.
    wait_for(lambda: stack.curl("POST", "/v1/counters/pod:0/increment", KEY_ADMIN).status == 200, timeout=30,
             what="writes after the restart")


def test_the_forming_job_refuses_a_cluster_formed_in_part(chart_cluster):
    nodes = chart_cluster
    for i in range(nodes.count):
        nodes.start(i)
    wait_for(lambda: all("PONG" in nodes.cli(i, "PING") for i in range(nodes.count)), what="the nodes")
    nodes.cli(2, "CLUSTER", "ADDSLOTS", "0")  # a slot given by hand: not a new cluster, not a formed one
    out = nodes.form()
    assert out.returncode == 1 and f"localhost:{nodes.port + 2} is in a cluster that does not serve every slot" in out.stderr, out.stderr
    assert all(nodes.cli(i, "CLUSTER", "INFO").count("cluster_known_nodes:1") for i in range(nodes.count)), "nothing was changed"
