"""The public face: real nginx rendered from nginx/, real curl, real counter-fcgi and Redis."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE, RENDER, ROOT, Nginx, wait_for

PROBLEM = "application/problem+json"


def assert_problem(reply, status, detail=None):
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith(PROBLEM), reply
    body = reply.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"]
    assert body["error"] == body["detail"]
    assert reply.headers.get("cache-control") == "no-store", "no cache in between keeps a refusal"
    if detail is not None:
        assert body["detail"] == detail, body
    return body


def test_rendered_config_passes_nginx_t(tmp):
    front = Nginx(tmp, tmp / "fcgi.sock")
    front.render()
    out = front.check()
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr
    keys = (tmp / "nginx" / "keys.conf").read_text()
    assert KEY_ADMIN in keys and "writer" in keys
    assert "syslog" not in (tmp / "nginx" / "counter-api.conf").read_text(), "the edge log is off unless asked for"


def test_edge_log_renders_only_when_asked_for(tmp):
    front = Nginx(tmp, tmp / "fcgi.sock", {"EDGE_LOG_ADDRESS": "[::1]:9146"})
    front.render()
    assert front.check().returncode == 0
    conf = (tmp / "nginx" / "counter-api.conf").read_text()
    assert "access_log syslog:server=[::1]:9146,nohostname,tag=counter_edge counter_edge if=$edge_answered;" in conf


@pytest.mark.parametrize("env,message", [
    ({"API_KEY": "", "API_KEYS_FILE": ""}, "no API key"),
    ({"API_KEY": "short"}, "API_KEY: a key must be 16 to 256"),
    ({"API_KEY": "has space in the key value"}, "API_KEY: a key must be"),
    ({"API_KEY": "x" * 20 + '";'}, "API_KEY: a key must be"),
    ({"PORT": "99999"}, "PORT must be"),
    ({"FCGI_LISTEN": "tcp:127.0.0.1:9000"}, "FCGI_LISTEN must be unix:"),
    ({"RATE_LIMIT_PER_KEY": "fast"}, "RATE_LIMIT_PER_KEY must look like"),
    ({"REAL_IP_FROM": "10.0.0.0/8; evil"}, "REAL_IP_FROM"),
    ({"RATE_LIMIT_PER_KEY_BURST": "0"}, "RATE_LIMIT_PER_KEY_BURST must be a whole number from 1"),
    ({"RATE_LIMIT_BAD_KEY_BURST": "-3"}, "RATE_LIMIT_BAD_KEY_BURST must be"),
    ({"EDGE_LOG_ADDRESS": "10.0.0.5:9146"}, "EDGE_LOG_ADDRESS must be a numeric loopback"),
    ({"EDGE_LOG_ADDRESS": "127.0.0.1:9146,tag=x"}, "EDGE_LOG_ADDRESS must be"),
])
def test_render_rejects_bad_settings(tmp, env, message):
    front = Nginx(tmp, tmp / "fcgi.sock", env)
    out = subprocess.run(["sh", str(RENDER), str(tmp / "out")], env=front.env, capture_output=True, text=True)
    assert out.returncode == 2
    assert message in out.stderr, out.stderr
    if env.get("API_KEY"):
        assert env["API_KEY"] not in out.stderr, "a key is never echoed"


@pytest.mark.parametrize("line,message", [
    (f"{KEY_READ} superuser", "scope must be read, write or admin"),
    (f"{KEY_READ}", "expected '<key> <scope> [name] [ns=PREFIX]'"),
    (f"{KEY_READ} read a b", "expected '<key> <scope> [name] [ns=PREFIX]'"),
    (f"{KEY_READ} read\n{KEY_READ} write", "listed twice"),
    (f"{KEY_READ} read bad/name", "a name must be"),
    # nginx's map compares keys without regard to case: it would refuse such a config outright.
    (f"{KEY_READ} read first\n{KEY_READ.upper()} write second",
     "key 'second' is the same as key 'first' but for letter case"),
    (f"{KEY_ADMIN.swapcase()} read other", "key 'other' is the same as key 'admin' but for letter case"),
])
def test_render_rejects_bad_keys_file(tmp, line, message):
    front = Nginx(tmp, tmp / "fcgi.sock")
    front.keys_file.write_text(line + "\n")
    out = subprocess.run(["sh", str(RENDER), str(tmp / "out")], env=front.env, capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert KEY_READ not in out.stderr, "a key is never echoed"


def test_endpoints_and_scopes(stack):
    assert stack.curl("GET", "/health").status == 200
    assert stack.curl("GET", "/livez").json() == {"status": "alive"}
    assert stack.curl("GET", "/read", KEY_READ).json()["value"] == 0
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 1
    assert stack.curl("POST", "/write", KEY_ADMIN).json()["value"] == 2
    assert stack.curl("GET", "/read", KEY_WRITE).json()["value"] == 2
    assert stack.curl("POST", "/reset", KEY_ADMIN).json()["value"] == 0
    assert stack.redis.get() == "0"


@pytest.mark.parametrize("method,path,key,status,detail", [
    ("GET", "/read", None, 401, "API key required"),
    ("GET", "/read", "", 401, "API key required"),
    ("POST", "/write", None, 401, "API key required"),
    ("GET", "/read", "not-a-key-not-a-key", 403, "Invalid API key"),
    ("GET", "/read", KEY_ADMIN.upper(), 403, "Invalid API key"),
    ("GET", "/read", KEY_ADMIN + "x", 403, "Invalid API key"),
    ("POST", "/write", KEY_READ, 403, "This API key's scope (read) does not allow this endpoint (needs write)"),
    ("POST", "/reset", KEY_READ, 403, "This API key's scope (read) does not allow this endpoint (needs admin)"),
    ("POST", "/reset", KEY_WRITE, 403, "This API key's scope (write) does not allow this endpoint (needs admin)"),
])
def test_auth_errors(stack, method, path, key, status, detail):
    reply = stack.curl(method, path, key)
    assert_problem(reply, status, detail)
    assert stack.redis.cli("EXISTS", "api_counter").stdout.strip() == "0", "a refused request never writes"


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/read", "GET, HEAD"), ("DELETE", "/read", "GET, HEAD"), ("GET", "/write", "POST"),
    ("GET", "/reset", "POST"), ("POST", "/health", "GET, HEAD"), ("PUT", "/livez", "GET, HEAD"),
])
def test_405_with_allow(stack, method, path, allow):
    reply = stack.curl(method, path, KEY_ADMIN)
    assert_problem(reply, 405)
    assert reply.headers["allow"] == allow


def test_404_for_unknown_paths(stack):
    for path in ("/", "/nope", "/read/", "/_auth/read", "/_problem", "/readx", "/_refused/401/read", "/_refused/403/write"):
        assert_problem(stack.curl("GET", path, KEY_ADMIN), 404)


def test_head_and_query_strings(stack):
    head = stack.curl("HEAD", "/read", KEY_READ)
    assert head.status == 200 and head.body == b""
    assert stack.curl("GET", "/read?value=99", KEY_READ).json()["value"] == 0


def test_413_body_too_large(stack):
    assert_problem(stack.curl("POST", "/write", KEY_WRITE, data=b"x" * 4096), 413)
    assert stack.redis.cli("EXISTS", "api_counter").stdout.strip() == "0"
    assert stack.curl("POST", "/write", KEY_WRITE, data=b"{}").status == 200


def test_414_uri_too_long(stack):
    assert_problem(stack.curl("GET", "/read?" + "a" * 10000, KEY_READ), 414)


def test_431_headers_too_large(stack):
    assert_problem(stack.curl("GET", "/read", KEY_READ, headers=["X-Big: " + "b" * 9000]), 431)


def test_400_malformed_request(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as conn:
        conn.sendall(b"GET /read HTTP/1.1\r\nHost: 127.0.0.1\r\nBroken header line\r\n\r\n")
        raw = conn.recv(4096)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == 400


def raw_request(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    return raw.partition(b"\r\n\r\n")


@pytest.mark.parametrize("request_bytes,status", [
    (b"POST /write HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n", 501),
    (b"POST /write HTTP/1.1\r\nHost: evil.example\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n", 501),
    (b"GET /read HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
    (b"GET /read HTTP/3.1\r\nHost: evil.example\r\n\r\n", 505),
    (b"GET /read HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
    (b"POST /write HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"G@T /read HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    (b"TRACE /read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 405),
])
def test_every_error_nginx_answers_is_problem_json(stack, request_bytes, status):
    head, body = raw_request(stack.port, request_bytes)[::2]
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"Content-Type: application/problem+json" in head, head
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] != "Error" and problem["detail"] != "Internal error"
    assert problem["error"] == problem["detail"]


def test_every_status_with_an_error_page_has_a_title_and_a_detail():
    conf = (ROOT / "nginx" / "counter-api.conf").read_text()
    pages = (ROOT / "nginx" / "problem-pages.conf").read_text() + conf
    statuses = set()
    for line in pages.splitlines():
        words = line.strip().rstrip(";").split()
        if words[:1] == ["error_page"]:
            statuses |= {int(w.lstrip("=")) for w in words[1:] if w.lstrip("=").isdigit() and w != "494"}
    assert {400, 401, 403, 404, 405, 413, 414, 429, 431, 501, 502, 503, 504, 505} <= statuses

    def entries(name):
        block = conf.split(f" ${name} {{", 1)[1].split("}", 1)[0]
        return {int(code) for code in re.findall(r"(?:^|;)\s*(\d{3})\s+\S", block, re.M)}
    assert statuses <= entries("problem_title"), statuses - entries("problem_title")
    assert statuses <= entries("problem_detail"), statuses - entries("problem_detail")


def test_unknown_host_is_closed_without_answer(stack):
    reply = stack.curl("GET", "/read", KEY_READ, host="evil.example")
    assert reply.status is None
    assert b"Empty reply" in reply.body or b"reset by peer" in reply.body, reply.body


def test_headers_request_id_and_no_version(stack):
    reply = stack.curl("GET", "/read", KEY_READ, headers=["X-Request-ID: trace-abc.123"])
    assert reply.headers["x-request-id"] == "trace-abc.123"
    assert reply.headers["server"] == "nginx"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-store"
    odd = stack.curl("GET", "/read", KEY_READ, headers=["X-Request-ID: bad id with spaces"])
    made = re.compile(r"^[0-9a-f]{16}-\d+-\d+-\d+$")  # instance id, worker pid, connection, request
    assert made.match(odd.headers["x-request-id"]), odd.headers["x-request-id"]
    ids = [stack.curl("GET", "/nope").headers["x-request-id"] for _ in range(5)]
    assert all(made.match(i) for i in ids) and len(set(ids + [odd.headers["x-request-id"]])) == 6, "unique"


def test_request_ids_differ_between_nginx_instances(tmp):
    # The instance id is drawn at each render: a restarted nginx (or another pod) never repeats
    # the ids of the one before, though its pids and connection numbers may.
    ids = set()
    for n in range(2):
        subprocess.run(["sh", str(RENDER), str(tmp / f"r{n}")], env={**os.environ, "API_KEY": KEY_ADMIN},
                       check=True, capture_output=True)
        conf = (tmp / f"r{n}" / "counter-api.conf").read_text()
        ids.add(re.search(r'default\s+"([0-9a-f]{16})-\$pid-\$connection-\$connection_requests";', conf).group(1))
    assert len(ids) == 2


def test_502_when_responder_down_then_recovers(stack, start_responder):
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    stack.responder.stop()
    stack.responder.socket.unlink(missing_ok=True)
    reply = stack.curl("GET", "/read", KEY_READ)
    assert_problem(reply, 502, "The counter service is unavailable")
    assert reply.headers["retry-after"] == "1"
    again = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(stack.redis.port)})
    assert again.socket == stack.responder.socket
    assert stack.curl("GET", "/read", KEY_READ).status == 200


def test_503_when_redis_down(stack):
    stack.redis.kill()
    reply = stack.curl("POST", "/write", KEY_WRITE)
    assert_problem(reply, 503, "Redis unavailable")
    assert reply.headers["retry-after"] == "1"
    health = stack.curl("GET", "/health")
    assert health.status == 503 and health.json()["status"] == "unhealthy"
    assert stack.curl("GET", "/livez").status == 200


def test_504_when_responder_hangs(start_stack):
    stack = start_stack(nginx_env={"FASTCGI_TIMEOUT": "1s"})
    stack.responder.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        reply = stack.curl("GET", "/read", KEY_READ)
        assert_problem(reply, 504, "The counter service did not answer in time")
        assert time.monotonic() - started < 5
    finally:
        stack.responder.proc.send_signal(signal.SIGCONT)


def test_429_for_a_valid_key(start_stack):
    stack = start_stack(nginx_env={"RATE_LIMIT_PER_KEY": "2r/s", "RATE_LIMIT_PER_KEY_BURST": "3"})
    results = stack.parallel("GET", "/read", KEY_READ, 30, parallel=10)
    statuses = [s for s, _ in results]
    assert len(statuses) == 30
    assert statuses.count(200) >= 1 and statuses.count(429) >= 20, statuses
    limited = stack.curl("GET", "/read", KEY_READ)
    assert_problem(limited, 429)
    assert limited.headers["retry-after"].isdigit()
    # Another key has its own budget.
    assert stack.curl("GET", "/read", KEY_WRITE).status == 200


def test_429_for_a_flood_of_bad_keys(start_stack):
    stack = start_stack(nginx_env={"RATE_LIMIT_BAD_KEY": "1r/s", "RATE_LIMIT_BAD_KEY_BURST": "5"})
    results = stack.parallel("GET", "/read", "wrong-key-wrong-key-1", 30, parallel=10)
    statuses = [s for s, _ in results]
    assert statuses.count(429) >= 20 and statuses.count(403) >= 1, statuses
    assert 200 not in statuses
    missing = [stack.curl("GET", "/read").status for _ in range(10)]
    assert 429 in missing, "requests with no key at all are limited too"
    assert stack.curl("GET", "/read", KEY_READ).status == 200, "a valid client is not starved"


# Headers built to trick the exact-key comparison ("$api_key_exact|$http_x_api_key" against a
# back-reference): the separator itself, doubled halves, and a header as long as nginx takes.
HOSTILE_KEYS = ["|", "||", "x||x", "ab|ab", f"|{KEY_READ}", f"{KEY_READ}|{KEY_READ}",
                f"{KEY_READ}||{KEY_READ}", "|" * 8000, ("y" * 20 + "|") * 2]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=range(len(HOSTILE_KEYS)))
def test_hostile_keys_are_refused_and_limited_as_bad_keys(start_stack, key):
    stack = start_stack(nginx_env={"RATE_LIMIT_BAD_KEY": "1r/s", "RATE_LIMIT_BAD_KEY_BURST": "3"})
    statuses = [s for s, _ in stack.parallel("GET", "/read", key, 15, parallel=5)]
    assert len(statuses) == 15 and set(statuses) <= {403, 429}, statuses
    assert statuses.count(429) >= 8, f"the bad-key limit applies: {statuses}"
    wait_for(lambda: len(stack.access_lines()) >= 15, what="the access log")
    assert {line["key_name"] for line in stack.access_lines()} == {"-"}
    assert stack.redis.cli("EXISTS", "api_counter").stdout.strip() == "0"


def test_key_rotation_with_reload(stack):
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    new_key = "tk-rotated-N9m8B7v6C5x4Z3a2"
    stack.keys_file.write_text(f"{KEY_WRITE} write writer\n{new_key} read rotated\n")
    stack.render("--keys-only")
    assert stack.check().returncode == 0
    stack.reload()
    assert stack.curl("GET", "/read", new_key).status == 200
    assert_problem(stack.curl("GET", "/read", KEY_READ), 403, "Invalid API key")
    assert stack.curl("POST", "/write", KEY_WRITE).status == 200


def test_access_log_is_json_without_keys(stack):
    stack.curl("GET", "/read", KEY_READ, headers=["X-Request-ID: log-check-1"])
    stack.curl("POST", "/write", KEY_WRITE)
    stack.curl("POST", "/reset", KEY_READ)
    stack.curl("GET", "/read", "not-a-key-not-a-key")
    stack.curl("GET", f"/read?key={KEY_ADMIN}", KEY_ADMIN)
    wait_for(lambda: len(stack.access_lines()) >= 6, what="access log lines")
    lines = stack.access_lines()
    first = next(l for l in lines if l["request_id"] == "log-check-1")
    assert first["status"] == 200 and first["path"] == "/read" and first["method"] == "GET"
    assert first["key_name"].startswith("key-") and first["scope"] == "read"
    assert {"time", "bytes", "request_time", "upstream_time", "client"} <= first.keys()
    assert any(l["key_name"] == "writer" and l["status"] == 200 for l in lines)
    assert any(l["scope"] == "none" and l["status"] == 403 for l in lines)
    # Refused requests are answered by internal refusal locations; the log names the route asked for.
    assert any(l["path"] == "/reset" and l["status"] == 403 and l["scope"] == "read" for l in lines)
    assert all(not l["path"].startswith("/_refused") for l in lines), lines
    text = stack.access_log.read_text() + stack.error_log.read_text() + stack.responder.log()
    for key in (KEY_ADMIN, KEY_WRITE, KEY_READ):
        assert key not in text, "an API key reached a log"


def test_concurrent_writes_through_nginx_are_exact(stack):
    results = stack.parallel("POST", "/write", KEY_WRITE, 400, parallel=16)
    assert [s for s, _ in results] == [200] * 400
    values = [json.loads(body)["value"] for _, body in results]
    assert sorted(values) == list(range(1, 401))
    assert stack.redis.get() == "400"


def test_request_id_and_key_name_reach_the_responder_but_not_the_key(start_stack):
    stack = start_stack(responder_env={"DEBUG": "true"})
    reply = stack.curl("POST", "/write", KEY_WRITE, headers=["X-Request-ID: corr-42"])
    assert reply.status == 200 and reply.headers["x-request-id"] == "corr-42"
    generated = stack.curl("GET", "/read", KEY_READ).headers["x-request-id"]
    stack.responder.terminate()
    lines = stack.responder.log_lines()
    ids = [l.get("request.id") for l in lines if l["message"] == "request"]
    assert "corr-42" in ids and generated in ids
    text = stack.responder.log()
    assert KEY_WRITE not in text and KEY_READ not in text


def test_responder_errors_pass_through_nginx_unchanged(stack):
    stack.redis.cli("SET", "api_counter", "not-a-number")
    body = assert_problem(stack.curl("GET", "/read", KEY_READ), 500)
    assert "not a 64-bit integer" in body["detail"]
    assert_problem(stack.curl("POST", "/write", KEY_WRITE), 500)
    assert stack.redis.get() == "not-a-number"
    stack.redis.cli("SET", "api_counter", str(2**63 - 1))
    assert_problem(stack.curl("POST", "/write", KEY_WRITE), 409)
    assert stack.curl("POST", "/reset", KEY_ADMIN).json()["value"] == 0


def test_health_checks_by_address_get_no_answer_by_default(stack):
    assert stack.curl("GET", "/health", host="10.1.2.3").status is None


def test_health_checks_by_address_are_answered_when_asked_for(start_stack):
    # An AWS ALB checks a target with its IP as Host; with HEALTH_CHECK_ANY_HOST only /health and
    # /livez answer it: every other request for an unknown host stays unanswered.
    lb = start_stack(nginx_env={"HEALTH_CHECK_ANY_HOST": "true"})
    health = lb.curl("GET", "/health", host="10.1.2.3")
    assert health.status == 200 and health.json()["redis"] == "connected"
    assert lb.curl("GET", "/livez", host="10.1.2.3:8080").status == 200
    assert_problem(lb.curl("POST", "/health", host="10.1.2.3"), 405)
    assert lb.curl("GET", "/read", KEY_READ, host="10.1.2.3").status is None
    assert lb.curl("GET", "/read", KEY_READ).status == 200, "the named host still serves everything"
