"""Alert rules (k8s/chart/files/alert-rules.yaml) and the Grafana dashboard: valid, the rules
unit-tested with promtool (each alert fires on a tripping series and stays quiet on a healthy one),
and both built only on metrics that the service really exports."""
import json
import re
import shutil
import subprocess
import time

import yaml

from conftest import ROOT, KEY_WRITE

MONITORING = ROOT / "k8s" / "monitoring"
FILES = ROOT / "k8s" / "chart" / "files"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def rules_file(tmp):
    # The chart's source of the rules is a plain Prometheus rule file; the PrometheusRule embeds it.
    shutil.copy(FILES / "alert-rules.yaml", tmp / "rules.yaml")
    shutil.copy(MONITORING / "alerts-test.yaml", tmp / "alerts-test.yaml")
    return yaml.safe_load((FILES / "alert-rules.yaml").read_text())["groups"]


def test_rules_pass_promtool_check_and_unit_tests(tmp):
    rules_file(tmp)
    check = subprocess.run([PROMTOOL, "check", "rules", str(tmp / "rules.yaml")], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 11 rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([PROMTOOL, "test", "rules", str(tmp / "alerts-test.yaml")], capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_every_alert_has_a_firing_and_a_quiet_case(tmp):
    groups = rules_file(tmp)
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert len(alerts) == 8
    cases = yaml.safe_load((MONITORING / "alerts-test.yaml").read_text())["tests"]
    fired, quiet = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fired == alerts and quiet == alerts


def test_rules_and_dashboard_use_only_metrics_the_service_exports(start_stack, tmp):
    stack = start_stack()
    stack.curl("POST", "/write", KEY_WRITE)
    stack.redis.kill()
    stack.curl("POST", "/write", KEY_WRITE)
    stack.redis.start()
    for _ in range(20):
        stack.curl("POST", "/write", KEY_WRITE)
    assert stack.curl("POST", "/write").status == 401  # answered by nginx: an edge line
    deadline = time.monotonic() + 5
    while True:
        scrape = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{stack.metrics_port}/metrics"],
                                capture_output=True, text=True, timeout=10).stdout
        if "counter_edge_requests_total{" in scrape or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    exported = {line.split("{")[0].split(" ")[0] for line in scrape.splitlines() if line and not line.startswith("#")}
    groups = rules_file(tmp)
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    used, used_records = set(), set()
    for group in groups:
        for rule in group["rules"]:
            names = set(re.findall(r"\b[a-z_]+(?::[a-z0-9_]+)+|\bcounter_[a-z_]+", rule["expr"]))
            used |= {n for n in names if ":" not in n}
            used_records |= {n for n in names if ":" in n}
    assert {"counter_http_requests_total", "counter_edge_requests_total"} <= used, "the rules use the service's metrics"
    assert used <= exported, used - exported
    assert used_records and used_records <= recorded, used_records - recorded
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 6 and all(panel["targets"] for panel in dashboard["panels"])
    on_dashboard = {name for expr in exprs for name in re.findall(r"\b(?:counter|nginx)_[a-z_]+", expr)}
    assert on_dashboard <= exported, on_dashboard - exported
    # Requests, errors, latency, Redis health and saturation are all on it.
    for needed in ("counter_http_requests_total", "counter_http_request_duration_seconds_bucket",
                   "counter_redis_errors_total", "counter_redis_connected_workers", "counter_workers_busy",
                   "counter_edge_requests_total", "nginx_connections"):
        assert needed in on_dashboard, needed


def test_monitoring_kustomization_renders():
    out = subprocess.run(["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    assert docs["PrometheusRule"]["metadata"]["namespace"] == "counter-api"
    # The PodMonitor scrapes what the Deployment serves, under the job the rules name.
    monitor = docs["PodMonitor"]
    assert monitor["metadata"]["namespace"] == "counter-api"
    app = subprocess.run(["kubectl", "kustomize", str(ROOT / "k8s")], capture_output=True, text=True)
    assert app.returncode == 0, app.stderr
    deployment = next(d for d in yaml.safe_load_all(app.stdout)
                      if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "counter-api")
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert labels[monitor["spec"]["jobLabel"]] == "counter-api"
    # The rules promtool tests, with the default runbook base in front of each runbook link.
    rules = yaml.safe_load((FILES / "alert-rules.yaml").read_text())
    base = yaml.safe_load((FILES.parent / "values.yaml").read_text())["monitoring"]["runbookBaseURL"]
    for rule in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
        rule["annotations"]["runbook_url"] = base + rule["annotations"]["runbook_url"]
    assert docs["PrometheusRule"]["spec"] == rules
    assert 'job="counter-api"' in (FILES / "alert-rules.yaml").read_text()
    endpoint, = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert ports[endpoint["port"]] == 9145 and endpoint["path"] == template["metadata"]["annotations"]["prometheus.io/path"]
    assert str(ports[endpoint["port"]]) == template["metadata"]["annotations"]["prometheus.io/port"]
    dashboard = next(d for d in yaml.safe_load_all(app.stdout) if d and d["kind"] == "ConfigMap"
                     and d["metadata"]["labels"].get("grafana_dashboard") == "1")
    assert json.loads(dashboard["data"]["counter-api.json"]) == json.loads((FILES / "dashboard.json").read_text())
