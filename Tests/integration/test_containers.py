"""The images, the compose stack, the Kubernetes pod and every manifest, checked offline.

Needs what `make test` prepares first: scripts/setup-containers.sh (podman, Docker engine,
docker-compose, validators in .tools/venv) and scripts/build-images.sh (the images). Traffic goes
only to 127.0.0.1 (published ports); the containers talk to each other over a unix socket and,
in compose, an internal bridge network.
"""
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import ROOT, checkov, free_port, wait_for
from docblocks import block as docblock
from kubeplay import build as build_kube_play

TOOLS = ROOT / ".tools" / "venv" / "bin"
K8S_VERSION = "1.35.0"  # infra/variables.tf kubernetes_version (a test keeps them equal)
TAG = os.environ.get("TAG", "dev")
REDIS_IMAGE = "localhost/redis:7-bookworm"


def run(*args, cwd=ROOT, env=None, timeout=300, check=True):
    out = subprocess.run([str(a) for a in args], cwd=cwd, env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{args}: {out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def rendered_manifests(directory=ROOT / "k8s"):
    """What `kubectl apply -k k8s` applies: the chart's rendered defaults, plus the namespace."""
    return run("kubectl", "kustomize", directory).stdout


def http(port, method, path, key=None, host="localhost"):
    args = ["curl", "-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
            "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"]
    if key:
        args += ["-H", f"X-API-Key: {key}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        return None, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def exercise_api(port, admin, reader, host="localhost"):
    """The HTTP checks every packaging of the service must pass (same contract as the local stack)."""
    status, body = http(port, "GET", "/health", host=host)
    assert status == 200 and json.loads(body)["redis"] == "connected", body
    assert http(port, "GET", "/livez", host=host)[0] == 200
    start = json.loads(http(port, "GET", "/read", reader, host)[1])["value"]
    for i in range(1, 4):
        status, body = http(port, "POST", "/write", admin, host)
        assert status == 200 and json.loads(body)["value"] == start + i
    assert json.loads(http(port, "GET", "/read", reader, host)[1])["value"] == start + 3
    for method, path, key, code in [("GET", "/read", None, 401), ("GET", "/read", "wrong-key-wrong-key", 403),
                                    ("POST", "/write", reader, 403), ("GET", "/nope", admin, 404),
                                    ("DELETE", "/read", admin, 405)]:
        status, body = http(port, method, path, key, host)
        assert status == code, (method, path, status, body)
        problem = json.loads(body)
        assert problem["status"] == code and problem["error"] == problem["detail"]
    assert http(port, "GET", "/health", host="unknown.example")[0] is None, "unknown hosts get no answer"
    return start + 3


# --- manifests and Dockerfiles ---------------------------------------------------------------

def test_kustomize_renders_and_validates_strictly(tmp):
    path = tmp / "rendered.yaml"
    path.write_text(rendered_manifests())
    out = run(TOOLS / "kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSION, path, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(path.read_text()) if d)
    for kind in ("Deployment", "StatefulSet", "Service", "Ingress", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "Namespace", "ConfigMap"):
        assert kind in kinds, kind
    assert "Secret" not in kinds, "no Secret values are committed"


def test_host_is_one_kustomize_setting(tmp):
    # The documented way (and scripts/deploy.sh's): the host in k8s/settings.env of a working copy.
    copy = tmp / "copy"
    copy.mkdir()
    run("cp", "-r", ROOT / "k8s", copy / "k8s")  # the folder alone: it reads nothing outside itself
    (copy / "k8s" / "settings.env").write_text("host=api.test.example\n")
    overlay = copy / "k8s"
    docs = [d for d in yaml.safe_load_all(rendered_manifests(overlay)) if d]
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "api.test.example"
    assert ingress["spec"]["tls"][0]["hosts"] == ["api.test.example"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    nginx = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "nginx")
    names = next(e["value"] for e in nginx["env"] if e["name"] == "SERVER_NAMES")
    assert names == "api.test.example localhost"


def test_pod_security_settings():
    docs = [d for d in yaml.safe_load_all(rendered_manifests()) if d]
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("framework,target", [("kubernetes", "rendered"), ("dockerfile", "docker")])
def test_checkov_has_no_failed_check(tmp, framework, target):
    if target == "rendered":
        path = tmp / "rendered.yaml"
        path.write_text(rendered_manifests())
        args = ["-f", path]
    else:
        args = ["-d", ROOT / "docker"]
    failed, passed = checkov(framework, *args)
    assert failed == [] and passed > 50, failed


def test_hadolint_yamllint_actionlint_compose_config():
    run(TOOLS / "hadolint", *sorted((ROOT / "docker").glob("*Dockerfile")), ROOT / "docker/offline/swift.Containerfile")
    run("yamllint", "-c", ROOT / ".yamllint.yaml", ROOT / "k8s", *sorted((ROOT / "docker").glob("compose*.yaml")), ROOT / ".github")
    out = run(TOOLS / "actionlint", check=False)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    run("docker-compose", "-f", "compose.yaml", "config", "-q", cwd=ROOT / "docker", env={"SECRETS_DIR": "/nonexistent"})
    for variant in ("compose.ha.yaml", "compose.cluster.yaml"):
        run("docker-compose", "-f", "compose.yaml", "-f", variant, "config", "-q", cwd=ROOT / "docker",
            env={"SECRETS_DIR": "/nonexistent"})


def test_deploy_script_renders_pinned_images_and_host():
    digest = "sha256:" + "ab" * 32
    out = run("scripts/deploy.sh", "render", env={"HOST": "counter.internal.example",
                                                  "APP_IMAGE": f"registry.example/counter-fcgi@{digest}",
                                                  "NGINX_IMAGE": "registry.example/counter-nginx:0123abc"})
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    images = {c["name"]: c["image"] for d in docs if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"counter-fcgi": f"registry.example/counter-fcgi@{digest}",
                      "nginx": "registry.example/counter-nginx:0123abc"}
    assert next(d for d in docs if d["kind"] == "Ingress")["spec"]["rules"][0]["host"] == "counter.internal.example"
    assert (ROOT / "k8s" / "settings.env").read_text() == "host=counter.example.com\n", "the repo copy is untouched"


def test_deploy_script_uses_the_chart_when_helm_is_there():
    # The fake helm of Tests/integration/fakehelm runs Helm's own engine (helm-python-sdk).
    digest = "sha256:" + "cd" * 32
    env = {"PATH": f"{ROOT / 'Tests/integration/fakehelm'}:{os.environ['PATH']}", "USE_HELM": "1",
           "HOST": "api.example.org", "VALUES": "k8s/chart/values-aws.yaml",
           "CERTIFICATE_ARN": "arn:aws:acm:eu-west-1:111122223333:certificate/4f0c2a91-5e7d-4c1b-9a3e-2d6f8b0c1e57",
           "APP_IMAGE": f"reg.example/counter-fcgi@{digest}", "NGINX_IMAGE": "reg.example/counter-nginx:v2"}
    out = run("scripts/deploy.sh", "render", env=env)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    images = {c["name"]: c["image"] for d in docs if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"counter-fcgi": f"reg.example/counter-fcgi@{digest}", "nginx": "reg.example/counter-nginx:v2"}
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb" and ingress["spec"]["rules"][0]["host"] == "api.example.org"
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/certificate-arn"] == env["CERTIFICATE_ARN"]
    assert all(d["metadata"].get("namespace") == "counter-api" for d in docs)
    missing = run("scripts/deploy.sh", "render", env={**env, "VALUES": "no-such-values.yaml"}, check=False)
    assert missing.returncode == 1 and "VALUES: cannot read no-such-values.yaml" in missing.stderr
    without = run("scripts/deploy.sh", "render", env={**env, "PATH": "/usr/bin:/bin", "USE_HELM": "1"}, check=False)
    assert without.returncode == 1 and "helm is not installed" in without.stderr
    plain = run("scripts/deploy.sh", "render", env={**env, "USE_HELM": "0"}, check=False)
    assert plain.returncode == 1 and "VALUES (chart values files) needs helm" in plain.stderr


@pytest.mark.parametrize("command", ["deploy", "secrets", "status", "cleanup"])
def test_deploy_scripts_fail_clearly_without_a_cluster(tmp, command):
    env = {"KUBECONFIG": str(tmp / "no-such-config")}
    out = run("scripts/deploy.sh", command, env=env, check=False)
    assert out.returncode == 1 and "no current context" in out.stderr
    simple = run("scripts/simple-deploy.sh", env=env, check=False)
    assert simple.returncode == 1 and "no current context" in simple.stderr
    status = run("scripts/check-status.sh", env=env, check=False)
    assert status.returncode == 1 and "no current context" in status.stderr
    assert run("scripts/deploy.sh", "bogus", check=False).returncode == 2


def test_deploy_test_needs_a_key():
    out = run("scripts/deploy.sh", "test", env={"API_KEY": ""}, check=False)
    assert out.returncode == 1 and "API_KEY is needed" in out.stderr


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("image,user", [(f"localhost/counter-fcgi:{TAG}", "10001:10001"),
                                        (f"localhost/counter-nginx:{TAG}", "10002:10001")])
def test_images_are_non_root_and_small(image, user):
    config = json.loads(run("podman", "image", "inspect", image).stdout)[0]
    assert config["Config"]["User"] == user
    assert config["Size"] < 250 * 1024 * 1024
    # No shell tools beyond the base image's: no curl, wget or compilers were installed.
    for tool in ("curl", "wget", "gcc", "swift"):
        out = run("podman", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", f"command -v {tool}", check=False)
        assert out.returncode != 0, f"{tool} in {image}"


def test_counter_fcgi_image_has_static_swift_runtime():
    out = run("podman", "run", "--rm", "--entrypoint", "/usr/bin/ldd", f"localhost/counter-fcgi:{TAG}",
              "/usr/local/bin/counter-fcgi")
    assert "libswiftCore" not in out.stdout and "not found" not in out.stdout
    assert "libfcgi" in out.stdout and "libhiredis" in out.stdout
    help_text = run("podman", "run", "--rm", f"localhost/counter-fcgi:{TAG}", "--help").stdout
    assert "REDIS_HOST" in help_text


# --- docker compose ----------------------------------------------------------------------------

class ComposeStack:
    """compose.yaml, with a variant file layered on it (the HA or the cluster one) or alone, under
    its own project name, secrets and port: the Redis passwords, `secret_names` besides, an admin
    key and a read key."""

    def __init__(self, tmp, variant, prefix, secret_names=(), **settings):
        secrets_dir = tmp / f"{prefix}-secrets"
        secrets_dir.mkdir()
        self.admin, self.reader = "ck-admin-" + secrets.token_hex(12), "ck-read-" + secrets.token_hex(12)
        self.passwords = {}
        for name in ("redis_password", "redis_admin_password", *secret_names):
            self.passwords[name] = secrets.token_hex(16)
            (secrets_dir / name).write_text(self.passwords[name] + "\n")
        (secrets_dir / "api_keys").write_text(f"{self.admin} admin ops\n{self.reader} read dashboards\n")
        for f in secrets_dir.iterdir():
            f.chmod(0o644)
        self.files = ["-f", "compose.yaml", *(["-f", variant] if variant else [])]
        self.project, self.port = prefix + secrets.token_hex(3), free_port()
        self.env = {"SECRETS_DIR": str(secrets_dir), "REDIS_IMAGE": REDIS_IMAGE, "PORT": str(self.port),
                    "APP_IMAGE": f"localhost/counter-fcgi:{TAG}", "NGINX_IMAGE": f"localhost/counter-nginx:{TAG}", **settings}

    def dc(self, *args, check=True):
        return run("docker-compose", "-p", self.project, *self.files, *args,
                   cwd=ROOT / "docker", env=self.env, check=check, timeout=300)

    def up(self):
        merged = yaml.safe_load(self.dc("config").stdout)
        assert merged["networks"]["backend"]["internal"] is True, "Redis and the app stay on an internal network"
        self.dc("up", "-d")

    def down(self):
        if os.environ.get("KEEP_COMPOSE_LOGS"):
            print(self.dc("logs", check=False).stdout[-5000:])
        self.dc("down", "-v", "--remove-orphans", check=False)


@pytest.fixture
def compose(tmp):
    stack = ComposeStack(tmp, None, "cftest")
    try:
        stack.up()
        wait_for(lambda: http(stack.port, "GET", "/health")[0] == 200, timeout=90, what="compose stack healthy")
        yield {"port": stack.port, "admin": stack.admin, "reader": stack.reader, "dc": stack.dc, "project": stack.project}
    finally:
        stack.down()


def test_compose_stack_serves_and_survives_a_redis_restart(compose):
    port, admin, reader, dc = compose["port"], compose["admin"], compose["reader"], compose["dc"]
    value = exercise_api(port, admin, reader)
    dc("restart", "redis")
    wait_for(lambda: http(port, "POST", "/write", admin)[0] == 200, timeout=60, what="writes after Redis restart")
    after = json.loads(http(port, "GET", "/read", reader)[1])["value"]
    assert after == value + 1, "the counter survived the Redis restart (AOF on its volume)"


def test_compose_containers_are_non_root_read_only_and_private(compose):
    project = compose["project"]
    for service, uid in (("app", "10001"), ("nginx", "10002"), ("redis", "999")):
        name = f"{project}_{service}_1"
        assert run("docker", "exec", name, "id", "-u").stdout.strip() == uid
        inspect = json.loads(run("docker", "inspect", name).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["HostConfig"]["CapDrop"] == ["ALL"]
        assert run("docker", "exec", name, "sh", "-c", "touch /probe", check=False).returncode != 0
        published = [p for p in (inspect["NetworkSettings"]["Ports"] or {}).values() if p]
        assert bool(published) == (service == "nginx"), f"only nginx is published ({service})"
    socket_mode = run("docker", "exec", f"{project}_app_1", "stat", "-c", "%a %u:%g",
                      "/run/counter-fcgi/counter-fcgi.sock").stdout.split()
    assert socket_mode == ["660", "10001:10001"]
    # nginx's access log is buffered (flushed every second): wait for its lines, then look.
    wait_for(lambda: '"request_id"' in compose["dc"]("logs", check=False).stdout, timeout=10, what="access log lines")
    logs = compose["dc"]("logs", check=False).stdout
    assert compose["admin"] not in logs and compose["reader"] not in logs
    # The app's Redis user may do only what the app does; no Redis port is published.
    denied = run("docker", "exec", f"{project}_redis_1", "sh", "-c",
                 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli --user counter --no-auth-warning '
                 "FLUSHALL; REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli --user counter "
                 "--no-auth-warning GET other_key", check=False).stdout
    assert denied.count("NOPERM") == 2, denied
    # A stop is graceful: nginx and counter-fcgi exit on their own on SIGTERM, well within the
    # grace period (a kill after it would show as 137), and say so.
    compose["dc"]("stop", "-t", "8", "nginx", "app")
    for service in ("nginx", "app"):
        state = json.loads(run("docker", "inspect", f"{project}_{service}_1").stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0 and not state["OOMKilled"], (service, state)


def test_health_checks_ask_the_responder_and_fail_for_a_hung_one(compose):
    name = f"{compose['project']}_app_1"
    inspect = json.loads(run("docker", "inspect", name).stdout)[0]
    image = json.loads(run("docker", "image", "inspect", f"localhost/counter-fcgi:{TAG}").stdout)[0]
    commands = [inspect["Config"]["Healthcheck"]["Test"][1:], image["Config"]["Healthcheck"]["Test"][1:]]
    liveness = [c["livenessProbe"]["exec"]["command"] for d in yaml.safe_load_all(rendered_manifests())
                if d and d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
                if c["name"] == "counter-fcgi"]
    assert liveness and all("probe" in c for c in commands + liveness), (commands, liveness)
    for command in commands + liveness:
        assert run("docker", "exec", name, *command, check=False).returncode == 0, command
    # Frozen, the process keeps its socket (what `test -S` looked at) but answers nothing.
    pid = inspect["State"]["Pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        assert run("docker", "exec", name, "test", "-S", "/run/counter-fcgi/counter-fcgi.sock",
                   check=False).returncode == 0
        for command in commands + liveness:
            hung = run("docker", "exec", name, *command, check=False)
            assert hung.returncode == 1 and "no answer in time" in hung.stderr, (command, hung.stderr)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert run("docker", "exec", name, *commands[0], check=False).returncode == 0


def test_deployment_doc_compose_steps_work_as_written(tmp):
    """docs/deployment.md's compose blocks, exactly as written, from the repository root. This
    machine has no registry, so Redis is the local stand-in, as the doc says for such machines;
    the images come from the doc's build block, which is exactly what `make test` ran before this."""
    assert docblock("build-images").strip() in (ROOT / "scripts" / "test.sh").read_text()
    secrets_dir = ROOT / "docker" / "secrets"
    saved = tmp / "saved-secrets"
    if secrets_dir.exists():
        secrets_dir.rename(saved)  # a developer's own secrets are put back afterwards
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SECRETS_DIR", "APP_IMAGE", "NGINX_IMAGE")}
    env["REDIS_IMAGE"] = REDIS_IMAGE

    def sh(name, timeout=300):
        out = subprocess.run(["bash", "-eo", "pipefail", "-c", docblock(name)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{name}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        return out.stdout

    try:
        health = sh("compose-up")
        assert json.loads(health.splitlines()[-1].strip() or health)["status"] == "healthy"
        written, read = [json.loads(part + "}") for part in sh("compose-use").split("}") if part.strip()]
        assert written["operation"] == "increment" and read["value"] == written["value"]
        # The access log is flushed every second: the line comes within one.
        wait_for(lambda: '"key_name":"ops"' in run("docker", "logs", "docker_nginx_1").stdout, timeout=10,
                 what="the key's name (not the key) in nginx's log")
    finally:
        sh("compose-down")
        shutil.rmtree(secrets_dir, ignore_errors=True)
        if saved.exists():
            saved.rename(secrets_dir)
    left = run("docker", "ps", "-a", "--filter", "label=com.docker.compose.project=docker", "-q").stdout
    assert left.strip() == "", "compose-down removed the stack"


def test_compose_ha_variant_follows_a_failover(tmp):
    """docker/compose.ha.yaml over compose.yaml: Redis with two replicas and three Sentinels; the
    primary's container killed, writes go on through the new primary with nothing acknowledged lost."""
    stack = ComposeStack(tmp, "compose.ha.yaml", "cfha", ["sentinel_password"], SENTINEL_DOWN_AFTER_MS="2000")
    port, admin, project, dc = stack.port, stack.admin, stack.project, stack.dc
    try:
        stack.up()
        wait_for(lambda: http(port, "GET", "/health")[0] == 200, timeout=120, what="the HA stack healthy")
        health = json.loads(http(port, "GET", "/health")[1])
        assert "primary" not in health, "the public health body never names an internal address"

        def primaries():  # what the app's log says of the primary it follows, in order
            lines = [json.loads(l.split("|", 1)[-1]) for l in dc("logs", "--no-color", "app", check=False).stdout.splitlines()
                     if '"redis primary' in l]
            return [l["redis.primary"] for l in lines]
        assert primaries()[0] == "172.31.250.10:6379"
        values = [json.loads(http(port, "POST", "/write", admin)[1])["value"] for _ in range(20)]
        assert values == list(range(1, 21))
        run("docker", "kill", f"{project}_redis_1")
        killed = time.monotonic()
        acknowledged = list(values)
        deadline = killed + 60
        while time.monotonic() < deadline:
            status, body = http(port, "POST", "/write", admin)
            assert status in (200, 503, 502), (status, body)
            if status == 200:
                acknowledged.append(json.loads(body)["value"])
                if len(acknowledged) >= len(values) + 10:
                    break
            time.sleep(0.2)
        back = time.monotonic() - killed
        assert len(acknowledged) >= len(values) + 10, "writes resumed on the new primary"
        assert len(acknowledged) == len(set(acknowledged)), "no value handed out twice"
        final = json.loads(http(port, "GET", "/read", admin)[1])["value"]
        assert final >= max(acknowledged), "no acknowledged increment lost"
        wait_for(lambda: primaries()[-1] in ("172.31.250.11:6379", "172.31.250.12:6379"), timeout=30,
                 what="the app to log the new primary")
        print(f"compose HA: writes resumed {back:.1f}s after the primary's container was killed")
    finally:
        stack.down()


def test_compose_cluster_variant_shards_counters_and_follows_a_failover(tmp):
    """docker/compose.cluster.yaml over compose.yaml: six Redis Cluster nodes started and formed by
    the Helm chart's own scripts; named counters spread over the three primaries; a primary's
    container killed, its counters answer again through the promoted replica, nothing acknowledged lost."""
    stack = ComposeStack(tmp, "compose.cluster.yaml", "cfcl", CLUSTER_NODE_TIMEOUT_MS="2000")
    port, admin, project, dc = stack.port, stack.admin, stack.project, stack.dc
    admin_password = stack.passwords["redis_admin_password"]

    def cli(service, *args):
        return run("docker", "exec", "-e", f"REDISCLI_AUTH={admin_password}", f"{project}_{service}_1",
                   "redis-cli", "--no-auth-warning", *args, check=False).stdout

    nodes = ["redis", *(f"redis-{i}" for i in range(1, 6))]
    try:
        stack.up()
        wait_for(lambda: http(port, "GET", "/health")[0] == 200, timeout=180, what="the cluster stack healthy")
        assert "ok: 6 nodes agree" in dc("logs", "--no-color", "redis-form", check=False).stdout
        names = [f"shard:{i}" for i in range(30)]
        for n, name in enumerate(names):
            status, body = http(port, "POST", f"/v1/counters/{name}/increment?by={n + 1}", admin)
            assert status == 200 and json.loads(body)["value"] == n + 1, body
        primaries = [node for node in nodes if "role:master" in cli(node, "INFO", "replication")]
        assert len(primaries) == 3 and all(int(cli(node, "DBSIZE")) > 0 for node in primaries), "spread over three primaries"
        victim = next(node for node in primaries if cli(node, "EXISTS", "{c:shard:0}").strip() == "1")
        # Its replica, by its fixed address (node i is CLUSTER_SUBNET_PREFIX.(10 + i)).
        replica_ip = re.search(r"slave0:ip=([0-9.]+)", cli(victim, "INFO", "replication")).group(1)
        replica = nodes[int(replica_ip.rsplit(".", 1)[1]) - 10]
        run("docker", "kill", f"{project}_{victim}_1")
        killed, acknowledged, refused = time.monotonic(), [1], 0

        def write_shard0():
            nonlocal refused
            status, body = http(port, "POST", "/v1/counters/shard:0/increment", admin)
            assert status in (200, 503, 502), (status, body)
            if status == 200:
                acknowledged.append(json.loads(body)["value"])
            else:
                refused += 1
            return status == 200
        # Its replica is promoted, but with one replica per primary the shard then has no replica
        # left, and a write that no replica can take is refused (503), never acknowledged and lost.
        # The killed node started again rejoins as the new primary's replica, and writes resume.
        wait_for(lambda: "role:master" in cli(replica, "INFO", "replication"), timeout=30, what="the replica promoted")
        assert not write_shard0() and not write_shard0(), "a shard without a replica refuses writes"
        run("docker", "start", f"{project}_{victim}_1")
        wait_for(write_shard0, timeout=60, interval=0.2, what="writes after the killed node rejoined")
        back = time.monotonic() - killed
        assert "role:slave" in cli(victim, "INFO", "replication"), "the old primary came back as a replica"
        for _ in range(9):
            assert write_shard0()
        assert len(acknowledged) == 11 and acknowledged == sorted(set(acknowledged)), acknowledged
        status, body = http(port, "GET", "/v1/counters/shard:0", admin)
        assert status == 200 and json.loads(body)["value"] == acknowledged[-1], "no acknowledged increment lost"
        for n, name in enumerate(names[1:], start=1):  # and every other counter kept its value
            status, body = http(port, "GET", f"/v1/counters/{name}", admin)
            assert status == 200 and json.loads(body)["value"] == n + 1, (name, body)
        print(f"compose cluster: shard:0 written again {back:.1f}s after its primary's container was killed")
    finally:
        stack.down()


# --- the Kubernetes pod, with podman kube play -------------------------------------------------

@pytest.fixture
def pod(tmp):
    admin, reader = "pk-admin-" + secrets.token_hex(12), "pk-read-" + secrets.token_hex(12)
    port = free_port()
    spec = build_kube_play(rendered_manifests(), port, secrets.token_hex(16),
                           f"{admin} admin ops\n{reader} read\n", REDIS_IMAGE)
    path = tmp / "pod.yaml"
    path.write_text(spec.replace("localhost/counter-fcgi:dev", f"localhost/counter-fcgi:{TAG}")
                        .replace("localhost/counter-nginx:dev", f"localhost/counter-nginx:{TAG}"))
    # kube play keeps ConfigMap volumes after the pod is gone; stale ones would serve old keys.
    volumes = [d["metadata"]["name"] for d in yaml.safe_load_all(spec) if d and d["kind"] == "ConfigMap"]

    def clean():
        run("podman", "pod", "rm", "-f", "counter-api-pod-0", check=False)
        run("podman", "volume", "rm", "-f", *volumes, check=False)

    clean()
    run("podman", "kube", "play", path)
    try:
        wait_for(lambda: http(port, "GET", "/health", host="counter.example.com")[0] == 200, timeout=60,
                 what="pod healthy")
        yield {"port": port, "admin": admin, "reader": reader}
    finally:
        run("podman", "kube", "down", path, check=False)
        clean()


def test_pod_serves_through_its_nginx_sidecar_and_survives_redis_restart(pod):
    port, admin, reader = pod["port"], pod["admin"], pod["reader"]
    value = exercise_api(port, admin, reader, host="counter.example.com")
    run("podman", "restart", "counter-api-pod-0-redis")
    wait_for(lambda: http(port, "POST", "/write", admin, "counter.example.com")[0] == 200, timeout=30,
             what="writes after Redis restart")
    assert json.loads(http(port, "GET", "/read", reader, "counter.example.com")[1])["value"] == value + 1


def pod_metrics():
    """counter-fcgi's metrics from inside the pod, through nginx's internal port (no curl in the image)."""
    script = ("exec 3<>/dev/tcp/127.0.0.1/9145 && printf 'GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3"
              " && cat <&3")
    return run("podman", "exec", "counter-api-pod-0-nginx", "bash", "-c", script).stdout


def edge_count(text, route, status):
    for line in text.splitlines():
        if line.startswith("counter_edge_requests_total{") and f'route="{route}"' in line and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0


def test_pod_metrics_have_nginx_figures_and_count_what_nginx_refuses(pod):
    port = pod["port"]
    text = pod_metrics()
    assert "counter_http_requests_total{" in text, "metrics are served inside the pod on 9145"
    assert 'nginx_connections{state="active"}' in text, "with nginx's own figures appended"
    before = edge_count(text, "/read", 401)
    for _ in range(3):
        assert http(port, "GET", "/read", host="counter.example.com")[0] == 401
    wait_for(lambda: edge_count(pod_metrics(), "/read", 401) == before + 3, timeout=10,
             what="the pod's counter-fcgi to count nginx's 401s")


def test_pod_containers_are_non_root_with_read_only_root(pod):
    for container, uid in (("nginx", "10002"), ("counter-fcgi", "10001")):
        name = f"counter-api-pod-0-{container}"
        assert run("podman", "exec", name, "id", "-u").stdout.strip() == uid
        inspect = json.loads(run("podman", "inspect", name).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert run("podman", "exec", name, "sh", "-c", "touch /probe", check=False).returncode != 0


def test_statefulset_redis_runs_with_acl_aof_and_noeviction(tmp):
    """The StatefulSet's own start command, run with podman as the cluster would (files mounted)."""
    docs = [d for d in yaml.safe_load_all(rendered_manifests()) if d]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    config_map = next(v["configMap"]["name"] for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    config = tmp / "redis.conf"
    config.write_text(next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config_map)["data"]["redis.conf"])
    secret_dir, data = tmp / "secret", tmp / "data"
    secret_dir.mkdir()
    data.mkdir()
    (secret_dir / "password").write_text("app-pw-123")
    (secret_dir / "admin-password").write_text("admin-pw-456")
    for path in (tmp, secret_dir, data, config, *secret_dir.iterdir()):
        path.chmod(0o777 if path.is_dir() else 0o644)
    name = "counter-redis-check-" + secrets.token_hex(3)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    run("podman", "run", "-d", "--name", name, "--user", "999:999", "--read-only",
        "-v", f"{config}:{mounts['config']}/redis.conf:ro",
        "-v", f"{secret_dir}:{mounts['password']}:ro", "-v", f"{data}:{mounts['data']}",
        "--tmpfs", mounts["run"], "--entrypoint", container["command"][0], REDIS_IMAGE,
        *container["command"][1:], *container["args"])
    try:
        def cli(user, password, *args):
            out = run("podman", "exec", "-e", f"REDISCLI_AUTH={password}", name, "redis-cli", "--no-auth-warning",
                      "--user", user, *args, check=False)
            return (out.stdout + out.stderr).strip()
        wait_for(lambda: cli("counter", "app-pw-123", "PING") == "PONG", timeout=15, what="redis in the pod spec")
        assert cli("counter", "app-pw-123", "INCR", "api_counter") == "1"
        assert "NOPERM" in cli("counter", "app-pw-123", "FLUSHALL")
        assert "NOPERM" in cli("counter", "app-pw-123", "GET", "someone_else")
        assert cli("default", "admin-pw-456", "CONFIG", "GET", "appendonly").split() == ["appendonly", "yes"]
        assert cli("default", "admin-pw-456", "CONFIG", "GET", "maxmemory-policy").split()[1] == "noeviction"
        refused = cli("counter", "wrong", "PING")
        assert "WRONGPASS" in refused or "NOAUTH" in refused, refused
        for probe in (container["readinessProbe"], container["livenessProbe"]):
            command = probe["exec"]["command"]
            assert run("podman", "exec", name, *command, check=False).returncode == 0, command
    finally:
        run("podman", "rm", "-f", name, check=False)


def test_no_secret_in_manifests_images_or_repository():
    rendered = rendered_manifests()
    assert "kind: Secret" not in rendered
    for image in (f"localhost/counter-fcgi:{TAG}", f"localhost/counter-nginx:{TAG}"):
        config = json.loads(run("podman", "image", "inspect", image).stdout)[0]["Config"]
        env = " ".join(config.get("Env") or [])
        assert "PASSWORD=" not in env and "API_KEY=" not in env and "API_KEYS_FILE=" not in env, env
        history = run("podman", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
        assert "requirepass" not in history and "X-API-Key" not in history
    tracked = run("git", "ls-files").stdout.split()
    for ignored in (".run/", "docker/secrets/", ".tools/"):
        assert not any(path.startswith(ignored) for path in tracked), ignored
    # The test keys and passwords of this suite never reach committed files.
    for needle in ("tk-admin-", "ck-admin-", "pk-admin-", "pw-Secret-1", "Zq9-secret-pw"):
        found = run("git", "grep", "-l", needle, "--", ".", ":!Tests", check=False).stdout
        assert found == "", f"{needle} in {found}"


def test_workflow_ships_pinned_images_with_oidc_and_smoke_tests():
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    jobs = workflow["jobs"]
    assert "SKIP_CONTAINERS=1 make test" in jobs["test"]["steps"][-1]["run"]
    deploy = jobs["deploy"]
    assert deploy["permissions"]["id-token"] == "write", "OIDC, not static cloud keys"
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    steps = {s.get("name", s.get("uses")): s for s in deploy["steps"]}
    rollout = steps["Deploy the exact images just built (by digest) and wait for the rollout"]
    assert "@${{ needs.images.outputs.app }}" in rollout["env"]["APP_IMAGE"]
    # The digests deployed are the ones whose keyless signatures were verified, before deploying.
    names = [s.get("name", s.get("uses")) for s in deploy["steps"]]
    verify = steps["Verify the signatures of the exact digests to deploy"]
    assert names.index("Verify the signatures of the exact digests to deploy") < names.index(
        "Deploy the exact images just built (by digest) and wait for the rollout")
    assert verify["env"]["APP_IMAGE"] == rollout["env"]["APP_IMAGE"] and "cosign verify" in verify["run"]
    assert "certificate-oidc-issuer https://token.actions.githubusercontent.com" in verify["run"]
    images = jobs["images"]
    assert images["permissions"]["id-token"] == "write" and images["permissions"]["security-events"] == "write"
    image_steps = {s.get("name", s.get("uses")): s for s in images["steps"]}
    for image in ("counter-fcgi", "nginx"):
        scan = image_steps[f"Scan the {image} image"]["with"]
        assert scan["severity"] == "CRITICAL,HIGH" and scan["ignore-unfixed"] is True and scan["exit-code"] == "1"
        assert image_steps[f"SBOM of {image} (attached to the run)"]["with"]["format"] == "spdx-json"
    assert "cosign sign --yes" in image_steps["Sign both images by digest, once, and verify"]["run"]
    assert "amazon-ecr-login" in json.dumps(images) and "ghcr.io" not in text, "images go to the Terraform's ECR"
    assert all("cache-from" in image_steps[f"{name} image"]["with"] for name in ("counter-fcgi", "nginx"))
    infra = yaml.safe_load((ROOT / ".github/workflows/infra.yml").read_text())
    run = " ".join(s.get("run", "") for s in infra["jobs"]["terraform"]["steps"])
    assert "terraform fmt -check" in run and "terraform validate" in run and "checkov" in run and "-lock=false" in run
    assert infra[True]["pull_request"]["paths"][0] == "infra/**"
    assert steps["Smoke test through the ingress"]["run"] == "scripts/deploy.sh test"
    assert "secrets." not in json.dumps(jobs["test"]), "no secret in the job that does not need one"
    dependabot = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"docker", "github-actions"}


def test_every_action_is_pinned_by_commit_with_its_version_beside_it():
    # A tag can be moved to other code after review; a commit cannot. The version in the comment is
    # what Dependabot reads and rewrites with the new commit when it updates an action.
    pinned = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v?\d+\.\d+\.\d+$")
    for workflow in sorted((ROOT / ".github/workflows").glob("*.yml")):
        lines = [l for l in workflow.read_text().splitlines() if re.match(r"^\s*(- )?uses:", l)]
        assert lines, f"{workflow.name} uses no action?"
        loose = [l.strip() for l in lines if not pinned.match(l)]
        assert not loose, f"{workflow.name}: not pinned by commit with a version comment: {loose}"
