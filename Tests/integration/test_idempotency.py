"""Exactly-once writes with Idempotency-Key, through nginx, on a real Redis."""
import json
import time

import pytest

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE, wait_for
from test_nginx import assert_problem


def idem(key):
    return f'Idempotency-Key: "{key}"'


def test_retry_replays_the_first_response(stack):
    first = stack.curl("POST", "/write", KEY_WRITE, headers=[idem("order-7")])
    again = stack.curl("POST", "/write", KEY_WRITE, headers=[idem("order-7")])
    assert first.status == 200 and "idempotent-replayed" not in first.headers
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.body == first.body, "same value and timestamp"
    assert stack.redis.get() == "1"
    ttl = int(stack.redis.cli("TTL", "{api_counter}:idempotency:writer:order-7").stdout)
    assert 86000 < ttl <= 86400, "kept for the retention window (24 h by default)"
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 2, "no key: a plain write"
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("order-8")]).json()["value"] == 3


@pytest.mark.parametrize("path,start,expected", [
    ("/write", None, 1), ("/write", str(2**63 - 2), 2**63 - 1), ("/write", "-7", -6), ("/reset", "41", 0),
])
def test_replays_read_what_the_script_wrote(stack, path, start, expected):
    # The record is written by the Lua script alone, in Redis; the replay is counter-fcgi's parse
    # of it. Both must say the same, at the edges of the value range too.
    if start is not None:
        stack.redis.cli("SET", "api_counter", start)
    first = stack.curl("POST", path, KEY_ADMIN, headers=[idem("edge-1")])
    assert first.status == 200 and first.json()["value"] == expected
    stored = stack.redis.cli("GET", "{api_counter}:idempotency:admin:edge-1").stdout.strip()
    operation, value, stamp = stored.split(":")
    assert (operation, int(value)) == ({"/write": "increment", "/reset": "reset"}[path], expected)
    replay = stack.curl("POST", path, KEY_ADMIN, headers=[idem("edge-1")])
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["value"] == int(value)
    assert f'"timestamp":{stamp}' in replay.body.decode(), (stamp, replay.body)
    assert replay.body == first.body


def test_concurrent_duplicates_apply_once(stack):
    results = stack.parallel("POST", "/write", KEY_WRITE, 24, parallel=12, headers=[idem("burst-1")])
    assert [s for s, _ in results] == [200] * 24
    assert {json.loads(body)["value"] for _, body in results} == {1}
    assert stack.replayed_flags.count("true") == 23
    assert stack.redis.get() == "1"


def test_keys_are_per_client_and_per_operation(stack):
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("shared")]).json()["value"] == 1
    other_client = stack.curl("POST", "/write", KEY_ADMIN, headers=[idem("shared")])
    assert other_client.json()["value"] == 2 and "idempotent-replayed" not in other_client.headers
    reused = stack.curl("POST", "/reset", KEY_ADMIN, headers=[idem("shared")])
    assert_problem(reused, 422)
    assert stack.redis.get() == "2"


@pytest.mark.parametrize("header", ['Idempotency-Key: ""', "Idempotency-Key: " + "k" * 256,
                                    'Idempotency-Key: "' + "k" * 256 + '"', "Idempotency-Key: caf\u00e9"])
def test_invalid_keys_are_400(stack, header):
    reply = stack.curl("POST", "/write", KEY_WRITE, headers=[header])
    assert_problem(reply, 400)
    assert "Invalid Idempotency-Key" in reply.json()["detail"]
    assert stack.redis.cli("EXISTS", "api_counter").stdout.strip() == "0"


def test_a_bare_uuid_is_a_key_and_its_quoted_form_the_same_key(stack):
    # What most clients and middlewares send: the bare value, not a Structured Field string.
    uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324"
    first = stack.curl("POST", "/write", KEY_WRITE, headers=[f"Idempotency-Key: {uuid}"])
    assert first.status == 200 and "idempotent-replayed" not in first.headers
    quoted = stack.curl("POST", "/write", KEY_WRITE, headers=[idem(uuid)])
    assert quoted.status == 200 and quoted.headers["idempotent-replayed"] == "true"
    assert quoted.body == first.body
    assert stack.redis.get() == "1"
    # Quotes that do not make a valid quoted string are part of the key, as sent.
    odd = stack.curl("POST", "/write", KEY_WRITE, headers=['Idempotency-Key: "a\\b"'])
    assert odd.status == 200 and odd.json()["value"] == 2
    assert stack.redis.cli("EXISTS", '{api_counter}:idempotency:writer:"a\\b"').stdout.strip() == "1"


def test_retention_window(start_stack):
    stack = start_stack(responder_env={"IDEMPOTENCY_TTL_SECONDS": "1"})
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("short")]).json()["value"] == 1
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("short")]).headers["idempotent-replayed"] == "true"
    wait_for(lambda: stack.redis.cli("EXISTS", "{api_counter}:idempotency:writer:short").stdout.strip() == "0",
             timeout=5, what="the record to expire")
    late = stack.curl("POST", "/write", KEY_WRITE, headers=[idem("short")])
    assert late.json()["value"] == 2 and "idempotent-replayed" not in late.headers


def test_survives_script_flush_and_redis_restart(stack):
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("a")]).json()["value"] == 1
    stack.redis.cli("SCRIPT", "FLUSH")
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("b")]).json()["value"] == 2
    stack.redis.kill()
    stack.redis.start()
    deadline = time.monotonic() + 3
    while stack.curl("POST", "/write", KEY_WRITE, headers=[idem("c")]).status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    replay = stack.curl("POST", "/write", KEY_WRITE, headers=[idem("a")])
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json()["value"] == 1, "records survive (AOF)"
    assert stack.redis.get() == "3"


def test_corrupt_counter_with_a_key_is_500_and_unrecorded(stack):
    stack.redis.cli("SET", "api_counter", "oops")
    assert_problem(stack.curl("POST", "/write", KEY_WRITE, headers=[idem("z")]), 500)
    assert stack.redis.cli("EXISTS", "{api_counter}:idempotency:writer:z").stdout.strip() == "0"
    stack.redis.cli("SET", "api_counter", "5")
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("z")]).json()["value"] == 6


def test_acl_user_limited_to_the_commands_and_keys_it_uses(tmp, start_redis, start_stack):
    redis = start_redis(password="admin-pw")
    # The same rules as the shipped configurations (compose, the chart, redis-ha.sh).
    redis.cli("ACL", "SETUSER", "counter", "on", ">counter-pw", "resetkeys", "~api_counter",
              "~{api_counter}:idempotency:*", "~{c:*", "resetchannels", "-@all", "+get", "+incr", "+set", "+ping",
              "+evalsha", "+script|load", "+incrby", "+decrby", "+del", "+scan", "+mget")
    stack = start_stack(responder_env={"REDIS_PORT": str(redis.port), "REDIS_USERNAME": "counter",
                                       "REDIS_PASSWORD": "counter-pw"})
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 1
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("acl")]).json()["value"] == 2
    assert stack.curl("POST", "/write", KEY_WRITE, headers=[idem("acl")]).headers["idempotent-replayed"] == "true"
    assert stack.curl("GET", "/read", KEY_READ).json()["value"] == 2
    assert stack.curl("POST", "/reset", KEY_ADMIN).status == 200
    assert stack.curl("GET", "/health").status == 200
    denied = redis.cli("--user", "counter", "--pass", "counter-pw", "--no-auth-warning", "FLUSHALL", check=False)
    assert "NOPERM" in denied.stdout + denied.stderr
    # Every named-counter route works under the same user; a command or key outside its rules does not.
    assert stack.curl("POST", "/v1/counters/acl/increment?by=2", KEY_WRITE).json()["value"] == 2
    assert stack.curl("POST", "/v1/counters/acl/decrement", KEY_WRITE, headers=[idem("acl-named")]).json()["value"] == 1
    assert stack.curl("PUT", "/v1/counters/acl", KEY_ADMIN, data=b'{"value": 9}',
                      headers=["Content-Type: application/json"]).json()["value"] == 9
    assert stack.curl("GET", "/v1/counters", KEY_READ).json()["counters"] == [{"name": "acl", "value": 9}]
    assert stack.curl("DELETE", "/v1/counters/acl", KEY_ADMIN).status == 204
    for command in (["KEYS", "*"], ["SET", "other", "1"], ["GET", "c:x"], ["CONFIG", "GET", "*"]):
        refused = redis.cli("--user", "counter", "--pass", "counter-pw", "--no-auth-warning", *command, check=False)
        assert "NOPERM" in refused.stdout + refused.stderr, command
