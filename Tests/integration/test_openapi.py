"""docs/openapi.yaml is the contract as served: valid, complete, and confirmed by schemathesis
against the running stack (nginx -> counter-fcgi -> Redis) with every check on."""
import re
import subprocess

import yaml

from conftest import KEY_ADMIN, ROOT

SPEC = ROOT / "docs" / "openapi.yaml"
TOOLS = ROOT / ".tools" / "schemathesis" / "bin"


def test_spec_is_valid_openapi():
    out = subprocess.run([str(TOOLS / "openapi-spec-validator"), str(SPEC)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_spec_covers_every_route_and_method():
    spec = yaml.safe_load(SPEC.read_text())
    routes = dict(re.findall(r'case (\w+) = "(/\w+)"', (ROOT / "Sources/CounterCore/Router.swift").read_text()))
    templates = dict(re.findall(r'case (\w+) = "(/v1/counters[^"]*)"', (ROOT / "Sources/CounterCore/Router+Counters.swift").read_text()))
    assert len(templates) == 5
    assert set(spec["paths"]) == set(routes.values()) | set(templates.values())
    named = {"/v1/counters": {"get"}, "/v1/counters/{name}": {"get", "put", "delete"},
             "/v1/counters/{name}/increment": {"post"}, "/v1/counters/{name}/decrement": {"post"},
             "/v1/counters/{name}/badge.svg": {"get"}}
    for path, operations in spec["paths"].items():
        operations = {k: v for k, v in operations.items() if k != "parameters"}
        if path in named:
            assert set(operations) == named[path], path
        else:
            methods = {"get", "head"} if path in ("/health", "/livez", "/read") else {"post"}
            assert set(operations) <= methods and set(operations) & methods, path
        for operation in operations.values():
            assert "405" in operation["responses"] and "429" in operation["responses"]


def test_schemathesis_finds_nothing_against_the_running_stack(start_stack):
    stack = start_stack(nginx_env={"RATE_LIMIT_PER_KEY": "100000r/s", "RATE_LIMIT_PER_ADDRESS": "100000r/s",
                                   "RATE_LIMIT_BAD_KEY": "100000r/s", "RATE_LIMIT_HITS_PER_ADDRESS": "100000r/s",
                                   # Some generated names count views on their badge, some are public.
                                   "PUBLIC_COUNTERS": "0 A", "PUBLIC_HIT_COUNTERS": "a 1"})
    out = subprocess.run(
        [str(TOOLS / "schemathesis"), "--config-file", str(ROOT / "Tests/integration/schemathesis.toml"), "run",
         str(SPEC), "--url", f"http://127.0.0.1:{stack.port}", "--checks", "all", "-H", f"X-API-Key: {KEY_ADMIN}",
         "--max-examples", "50", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "No issues found" in out.stdout
    generated = int(re.search(r"(\d+) generated", out.stdout).group(1))
    assert generated > 100, "schemathesis really exercised the API"
