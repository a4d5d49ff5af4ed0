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
    seeded = put(responder, "page-views", 123456789012345)
    assert seeded.status == 200 and seeded.json()["operation"] == "set"
    assert redis.get("{c:page-views}") == "123456789012345"
    gone = call(responder, "DELETE", "/v1/counters/page-views")
    assert gone.status == 204 and gone.body == b""
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
