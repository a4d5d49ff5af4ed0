"""Named counters (/v1/counters) through FastCGI exactly as nginx sends them (cgi-fcgi), on a real
redis-server: every route, its errors, exactly-once retries, listing pages over SCAN, namespaces,
and what lands in Redis (one {c:<name>} hash tag per counter and its records)."""
import json
import threading

import pytest

from test_api import assert_problem

MAX = 9223372036854775807
MIN = -9223372036854775808


def call(responder, method, path, query="", body=b"", key=None, namespace=None, content_type=None, client="ci"):
    params = {"QUERY_STRING": query, "API_KEY_NAME": client}
    if key is not None:
        params["HTTP_IDEMPOTENCY_KEY"] = key
    if namespace is not None:
        params["API_KEY_PREFIX"] = namespace
    if content_type is not None:
        params["CONTENT_TYPE"] = content_type
    return responder.request(method, path, params=params, body=body)


def put(responder, name, value, **kwargs):
    return call(responder, "PUT", f"/v1/counters/{name}", body=json.dumps({"value": value}).encode(),
                content_type="application/json", **kwargs)


def test_a_counters_life(responder, redis):
    assert_problem(call(responder, "GET", "/v1/counters/page-views"), 404)
    assert redis.cli("DBSIZE").stdout.strip() == "0", "reading a missing counter must not create it"
    first = call(responder, "POST", "/v1/counters/page-views/increment")
    assert first.status == 200 and first.json()["value"] == 1 and first.json()["name"] == "page-views"
    assert call(responder, "POST", "/v1/counters/page-views/increment", query="by=41").json()["value"] == 42
    down = call(responder, "POST", "/v1/counters/page-views/decrement", query="by=50").json()
    assert down["value"] == -8 and down["operation"] == "decrement"
    assert redis.get("{c:page-views}") == "-8"
    read = call(responder, "GET", "/v1/counters/page-views")
    assert read.status == 200 and read.json()["value"] == -8 and read.headers["cache-control"] == "no-store"
    carried = put(responder, "page-views", 123456789012345)
    assert carried.status == 200 and carried.json()["operation"] == "set"
    assert redis.get("{c:page-views}") == "123456789012345"
    gone = call(responder, "DELETE", "/v1/counters/page-views")
    assert gone.status == 204 and gone.body == b""
    assert "content-length" not in gone.headers and "content-type" not in gone.headers
    assert redis.cli("EXISTS", "{c:page-views}").stdout.strip() == "0"
    assert_problem(call(responder, "DELETE", "/v1/counters/page-views"), 404)
    # The original's routes and key are untouched by named counters.
    assert responder.request("POST", "/write").json()["value"] == 1 and redis.get() == "1"


@pytest.mark.parametrize("step,stored,by", [("increment", MAX, 1), ("decrement", MIN, 1), ("increment", 1, MAX),
                                            ("decrement", -2, MAX)])
@pytest.mark.parametrize("key", [None, "k-overflow"])
def test_the_64_bit_range_is_409_and_nothing_changes(responder, redis, step, stored, by, key):
    redis.cli("SET", "{c:edge}", str(stored))
    body = assert_problem(call(responder, "POST", f"/v1/counters/edge/{step}", query=f"by={by}", key=key), 409)
    assert "64-bit range" in body["detail"]
    assert redis.get("{c:edge}") == str(stored)
    assert redis.cli("KEYS", "{c:edge}:idempotency:*").stdout.strip() == "", "a failed write leaves no record"


def test_exactly_once_with_an_idempotency_key(responder, redis):
    first = call(responder, "POST", "/v1/counters/orders/increment", query="by=5", key="retry-1").json()
    again = call(responder, "POST", "/v1/counters/orders/increment", query="by=5", key="retry-1")
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true" and again.json() == first
    assert redis.get("{c:orders}") == "5"
    record = "{c:orders}:idempotency:ci:retry-1"
    assert redis.get(record).startswith("increment/5:5:")
    assert 0 < int(redis.cli("TTL", record).stdout) <= 86400
    # Another argument or another operation with the same key: 422, nothing done.
    assert "increment 5" in assert_problem(call(responder, "POST", "/v1/counters/orders/increment", query="by=6",
                                                key="retry-1"), 422)["detail"]
    assert_problem(call(responder, "POST", "/v1/counters/orders/decrement", query="by=5", key="retry-1"), 422)
    assert redis.get("{c:orders}") == "5"
    # Keys are per client: another caller's same key is its own write.
    assert call(responder, "POST", "/v1/counters/orders/increment", query="by=5", key="retry-1",
                client="other").json()["value"] == 10
    # PUT and DELETE replay; a replayed DELETE is still a 204.
    assert put(responder, "orders", 100, key="set-1").json()["value"] == 100
    redis.cli("SET", "{c:orders}", "7")
    assert put(responder, "orders", 100, key="set-1").headers["idempotent-replayed"] == "true"
    assert redis.get("{c:orders}") == "7"
    assert call(responder, "DELETE", "/v1/counters/orders", key="del-1").status == 204
    replay = call(responder, "DELETE", "/v1/counters/orders", key="del-1")
    assert replay.status == 204 and replay.headers["idempotent-replayed"] == "true"


def test_concurrent_duplicates_apply_once(responder, redis):
    results = []

    def send():
        results.append(call(responder, "POST", "/v1/counters/race/increment", query="by=3", key="same").status)
    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 12
    assert redis.get("{c:race}") == "3"


def test_the_script_survives_a_script_flush(responder, redis):
    assert call(responder, "POST", "/v1/counters/s/increment", key="a").json()["value"] == 1
    redis.cli("SCRIPT", "FLUSH")
    assert call(responder, "POST", "/v1/counters/s/increment", key="b").json()["value"] == 2


def test_listing_pages_through_every_counter(responder, redis):
    names = [f"load:{i:03d}" for i in range(250)]
    redis.cli("MSET", *[part for name in names for part in (f"{{c:{name}}}", str(len(name)))])
    # Noise: other counters, the default counter, and an idempotency record whose key ends with }.
    redis.cli("MSET", "{c:other}", "1", "api_counter", "9", "{c:load:000}:idempotency:ci:x}", "increment/1:1:1.0")
    seen, cursor, pages = [], "", 0
    while True:
        query = "prefix=load:&limit=7" + (f"&cursor={cursor}" if cursor else "")
        reply = call(responder, "GET", "/v1/counters", query=query)
        assert reply.status == 200, reply
        page = reply.json()
        assert len(page["counters"]) <= 7
        seen += [(c["name"], c["value"]) for c in page["counters"]]
        pages += 1
        cursor = page["next"]
        if cursor is None or pages > 200:
            break
    # SCAN may hand out a key twice while Redis resizes its table, never skip one that stayed.
    assert {name for name, _ in seen} == set(names) and all(value == 8 for _, value in seen)
    assert pages >= 250 // 7
    everything = call(responder, "GET", "/v1/counters", query="limit=1000").json()
    assert {c["name"] for c in everything["counters"]} == set(names) | {"other"} and everything["next"] is None


def test_namespaces_from_the_key(responder, redis):
    redis.cli("MSET", "{c:billing:acme}", "1", "{c:ops:deploys}", "2")
    assert call(responder, "GET", "/v1/counters/billing:acme", namespace="billing:").status == 200
    body = assert_problem(call(responder, "POST", "/v1/counters/ops:deploys/increment", namespace="billing:"), 403)
    assert '"billing:"' in body["detail"]
    assert redis.get("{c:ops:deploys}") == "2"
    listed = call(responder, "GET", "/v1/counters", namespace="billing:").json()
    assert [c["name"] for c in listed["counters"]] == ["billing:acme"]
    assert_problem(call(responder, "GET", "/v1/counters", query="prefix=ops:", namespace="billing:"), 403)
    # A prefix nginx should never pass (not the name alphabet) admits nothing rather than everything.
    assert_problem(call(responder, "GET", "/v1/counters/billing:acme", namespace="bad prefix"), 403)


@pytest.mark.parametrize("method,path,query,body,content_type,status", [
    ("GET", "/v1/counters/a b", "", b"", None, 400),
    ("GET", "/v1/counters/" + "x" * 129, "", b"", None, 400),
    ("GET", "/v1/counters/a/nope", "", b"", None, 404),
    ("POST", "/v1/counters/a/increment", "by=0", b"", None, 400),
    ("POST", "/v1/counters/a/increment", "by=abc", b"", None, 400),
    ("POST", "/v1/counters/a/increment", "by=%zz", b"", None, 400),
    ("PUT", "/v1/counters/a", "", b'{"value": "1"}', "application/json", 400),
    ("PUT", "/v1/counters/a", "", b'{"value": 1}', "text/plain", 415),
    ("PUT", "/v1/counters/a", "", b'{"value": 1}' + b" " * 1100, "application/json", 413),
    ("GET", "/v1/counters", "limit=0", b"", None, 400),
    ("GET", "/v1/counters", "cursor=zz", b"", None, 400),
    ("PATCH", "/v1/counters/a", "", b"", None, 405),
    ("GET", "/v1/counters/a/increment", "", b"", None, 405),
])
def test_every_error_is_a_problem(responder, redis, method, path, query, body, content_type, status):
    assert_problem(call(responder, method, path, query=query, body=body, content_type=content_type), status)
    assert redis.cli("DBSIZE").stdout.strip() == "0"


def test_a_corrupt_value_and_a_lost_redis(responder, redis):
    redis.cli("SET", "{c:bad}", "not a number")
    assert_problem(call(responder, "GET", "/v1/counters/bad"), 500)
    assert_problem(call(responder, "POST", "/v1/counters/bad/increment"), 500)
    assert redis.get("{c:bad}") == "not a number"
    # A listing leaves it out (and logs it) rather than fail the page of every other counter.
    assert call(responder, "PUT", "/v1/counters/good", body=b'{"value": 7}', content_type="application/json").status == 200
    listed = call(responder, "GET", "/v1/counters")
    assert listed.status == 200 and [c["name"] for c in json.loads(listed.body)["counters"]] == ["good"], listed.body
    assert any(l.get("message") == "counter value is not an integer" and l.get("redis.key") == "{c:bad}"
               for l in responder.log_lines())
    redis.kill()
    reply = call(responder, "POST", "/v1/counters/x/increment")
    assert_problem(reply, 503)
    assert reply.headers["retry-after"] == "1"


def test_metrics_label_routes_by_template(responder):
    call(responder, "GET", "/v1/counters/secret-counter-name")
    call(responder, "POST", "/v1/counters/secret-counter-name/increment")
    metrics = responder.request("GET", "/metrics").body.decode()
    assert 'route="/v1/counters/{name}",status="404"' in metrics
    assert 'route="/v1/counters/{name}/increment",status="200"' in metrics
    assert "secret-counter-name" not in metrics


# --- through nginx: scopes by method, namespaces from the keys file -------------------------------

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE  # noqa: E402

KEY_BILLING = "tk-billing-W4e7R1t9Y3u6I0o2"


def test_nginx_checks_the_scope_each_method_needs(stack):
    assert stack.curl("POST", "/v1/counters/hits/increment?by=2", KEY_WRITE).json()["value"] == 2
    assert stack.curl("GET", "/v1/counters/hits", KEY_READ).json()["value"] == 2
    assert stack.curl("GET", "/v1/counters?prefix=h", KEY_READ).json()["counters"] == [{"name": "hits", "value": 2}]
    assert_problem(stack.curl("GET", "/v1/counters/hits"), 401)
    assert_problem(stack.curl("GET", "/v1/counters/hits", "tk-unknown-key-000000"), 403)
    refused = assert_problem(stack.curl("POST", "/v1/counters/hits/increment", KEY_READ), 403)
    assert "needs write" in refused["detail"]
    for method in ("PUT", "DELETE"):
        assert "needs admin" in assert_problem(stack.curl(method, "/v1/counters/hits", KEY_WRITE, data=b'{"value": 1}',
                                                          headers=["Content-Type: application/json"]), 403)["detail"]
    carried = stack.curl("PUT", "/v1/counters/hits", KEY_ADMIN, data=b'{"value": 1000}', headers=["Content-Type: application/json"])
    assert carried.status == 200 and carried.json()["value"] == 1000
    assert stack.curl("DELETE", "/v1/counters/hits", KEY_ADMIN).status == 204
    assert stack.redis.cli("EXISTS", "{c:hits}").stdout.strip() == "0"
    # An unknown method needs a key, then gets the resource's own Allow list.
    allowed = stack.curl("PATCH", "/v1/counters/hits", KEY_READ)
    assert allowed.status == 405 and allowed.headers["allow"] == "GET, HEAD, PUT, DELETE"
    assert_problem(stack.curl("PATCH", "/v1/counters/hits"), 401)
    # The original's 404 names the new root too.
    assert "/v1/counters" in assert_problem(stack.curl("GET", "/v2", KEY_READ), 404)["detail"]


def test_retries_through_nginx_are_answered_once(stack):
    headers = ["Idempotency-Key: order-77"]
    first = stack.curl("POST", "/v1/counters/orders/increment?by=3", KEY_WRITE, headers=headers)
    again = stack.curl("POST", "/v1/counters/orders/increment?by=3", KEY_WRITE, headers=headers)
    assert first.status == again.status == 200 and again.headers["idempotent-replayed"] == "true"
    assert stack.redis.get("{c:orders}") == "3"
    # The record is the caller's key name, never the key.
    assert stack.redis.cli("EXISTS", "{c:orders}:idempotency:writer:order-77").stdout.strip() == "1"


def test_a_namespaced_key_sees_only_its_names(tmp, start_stack):
    keys = tmp / "ns-keys.txt"
    keys.write_text(f"{KEY_READ} read\n{KEY_BILLING} write billing ns=billing:\n")
    stack = start_stack(nginx_env={"API_KEYS_FILE": str(keys)})
    assert stack.curl("POST", "/v1/counters/billing:acme/increment", KEY_BILLING).json()["value"] == 1
    body = assert_problem(stack.curl("POST", "/v1/counters/ops:deploys/increment", KEY_BILLING), 403)
    assert body["detail"] == 'This API key may use only counters whose names start with "billing:"'
    stack.redis.cli("SET", "{c:ops:deploys}", "5")
    assert [c["name"] for c in stack.curl("GET", "/v1/counters", KEY_BILLING).json()["counters"]] == ["billing:acme"]
    # A key without ns= keeps every counter (as API_KEY alone does).
    assert {c["name"] for c in stack.curl("GET", "/v1/counters", KEY_READ).json()["counters"]} == {"billing:acme", "ops:deploys"}
    assert KEY_BILLING not in stack.responder.log()


@pytest.mark.parametrize("line,error", [
    (f"{KEY_BILLING} write billing ns=", "ns= needs a prefix"),
    (f"{KEY_BILLING} write billing ns=a*", "ns= takes 1 to 128 characters"),
    (f"{KEY_BILLING} write ns=a: billing", "expected '<key> <scope> [name] [ns=PREFIX]'"),
    (f"{KEY_BILLING} write ns=a: ns=b:", "ns= is given twice"),
    (f"{KEY_BILLING} write billing ns=a: extra", "expected '<key> <scope> [name] [ns=PREFIX]'"),
])
def test_render_refuses_a_bad_namespace(tmp, line, error):
    import subprocess
    from conftest import RENDER
    keys = tmp / "bad-keys.txt"
    keys.write_text(line + "\n")
    out = subprocess.run(["sh", str(RENDER), str(tmp / "out")], env={"PATH": "/usr/bin:/bin", "API_KEYS_FILE": str(keys)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and error in out.stderr, out.stderr
    assert KEY_BILLING not in out.stderr
