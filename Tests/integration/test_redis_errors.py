"""What Redis's error replies lead to, through nginx with the metrics scrape: a configuration
error is said as one (500, no Retry-After, its own log line and metric kind), a connection that
can no longer be used is dropped and replaced with the usual backoff, and an idle connection
closed by Redis's own `timeout` is replaced quietly."""

import pytest

from conftest import KEY_READ, KEY_WRITE, wait_for
from test_metrics import sample, scrape
from test_nginx import assert_problem


def levels_and_messages(responder):
    return [(line["level"], line["message"]) for line in responder.log_lines()]


def test_a_missing_acl_permission_is_a_configuration_error(start_stack, redis):
    # The app's user may GET but not INCR or SET: an ACL mistake that no retry can cure.
    redis.cli("ACL", "SETUSER", "counter", "on", ">counter-pw", "~api_counter", "+get", "+ping")
    stack = start_stack(responder_env={"REDIS_USERNAME": "counter", "REDIS_PASSWORD": "counter-pw",
                                       "FCGI_THREADS": "1"})
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    for _ in range(2):
        reply = stack.curl("POST", "/write", KEY_WRITE)
        assert_problem(reply, 500, "The service cannot use its Redis: a configuration error (see the service's log)")
        assert "retry-after" not in reply.headers, "nothing invites a retry"
    assert stack.curl("GET", "/read", KEY_READ).status == 200, "the connection stays usable"
    _, text = scrape(stack)
    assert sample(text, "counter_redis_errors_total", kind="config") == 2
    assert sample(text, "counter_redis_errors_total", kind="io") is None
    # One worker answered both: one log line says it (at most one per worker every 10 s).
    errors = [line for line in stack.responder.log_lines() if line["message"] == "redis configuration error"]
    assert len(errors) == 1 and errors[0]["level"] == "error"
    assert errors[0]["redis.error"].startswith("NOPERM") and errors[0]["redis.command"] == "INCR"
    assert ("warning", "redis disconnected") not in levels_and_messages(stack.responder)


def test_redis_asking_for_a_password_the_service_was_not_given(start_stack, start_redis):
    protected = start_redis(password="only-the-admin-knows")
    stack = start_stack(responder_env={"REDIS_PORT": str(protected.port)})
    reply = stack.curl("GET", "/read", KEY_READ)
    assert_problem(reply, 500)
    assert "retry-after" not in reply.headers
    _, text = scrape(stack)
    assert sample(text, "counter_redis_errors_total", kind="config") >= 1
    errors = [line for line in stack.responder.log_lines() if line["message"] == "redis configuration error"]
    assert errors and errors[0]["redis.error"].startswith("NOAUTH") and errors[0]["level"] == "error"


@pytest.mark.parametrize("env,step,reply", [
    ({"REDIS_PASSWORD": "not-the-password"}, "AUTH", "WRONGPASS"),
    ({"REDIS_PASSWORD": "the-password", "REDIS_DB": "99"}, "SELECT 99", "ERR DB index is out of range"),
])
def test_a_refused_handshake_is_a_configuration_error(start_stack, start_redis, env, step, reply):
    protected = start_redis(password="the-password")
    stack = start_stack(responder_env={"REDIS_PORT": str(protected.port), "FCGI_THREADS": "1", **env})
    for _ in range(5):
        answer = stack.curl("POST", "/write", KEY_WRITE)
        assert_problem(answer, 500, "The service cannot use its Redis: a configuration error (see the service's log)")
        assert "retry-after" not in answer.headers, "nothing invites a retry"
    assert stack.curl("GET", "/health").json()["status"] == "unhealthy"
    _, text = scrape(stack)
    assert sample(text, "counter_redis_errors_total", kind="config") >= 5, "each one is counted"
    assert sample(text, "counter_redis_errors_total", kind="handshake") is None
    # One worker, six failed requests within 10 s (the warm-up's attempt first): one line.
    errors = [line for line in stack.responder.log_lines() if line["message"] == "redis configuration error"]
    assert len(errors) == 1, errors
    assert errors[0]["level"] == "error" and errors[0]["redis.command"] == step
    assert errors[0]["redis.error"].startswith(reply)
    assert "not-the-password" not in stack.responder.log() and "the-password" not in stack.responder.log()
    assert protected.get() in ("", "(nil)") and protected.cli("DBSIZE").stdout.strip() == "0", "nothing written"


def test_a_primary_demoted_to_replica_is_left_and_rejoined(start_stack, start_redis, redis):
    # READONLY: the address now reaches a replica (a failover moved the primary). The connection
    # is dropped like a broken one (logged, counted, backed off) and the next one is checked anew.
    stack = start_stack(responder_env={"FCGI_THREADS": "1"})
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 1
    other = start_redis()
    redis.cli("REPLICAOF", "127.0.0.1", other.port)
    wait_for(lambda: "role:slave" in redis.cli("INFO", "replication").stdout, what="the replica role")
    reply = stack.curl("POST", "/write", KEY_WRITE)
    assert_problem(reply, 503)
    assert reply.headers["retry-after"] == "1"
    disconnects = [line for line in stack.responder.log_lines() if line["message"] == "redis disconnected"]
    assert disconnects and "READONLY" in disconnects[0]["redis.error"]
    _, text = scrape(stack)
    assert sample(text, "counter_redis_errors_total", kind="io") == 1
    redis.cli("REPLICAOF", "NO", "ONE")
    wait_for(lambda: stack.curl("POST", "/write", KEY_WRITE).status == 200, timeout=3, what="writes again")
    _, text = scrape(stack)
    assert sample(text, "counter_redis_reconnects_total") >= 1


def test_idle_connections_closed_by_redis_timeout_are_replaced_quietly(start_stack, redis):
    stack = start_stack()
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    redis.cli("CONFIG", "SET", "timeout", "1")
    wait_for(lambda: int(redis.cli("CLIENT", "LIST").stdout.count("cmd=")) <= 1, timeout=5,
             what="Redis to close the idle connections")
    for _ in range(6):
        assert stack.curl("POST", "/write", KEY_WRITE).status == 200
    _, text = scrape(stack)
    assert sample(text, "counter_redis_errors_total", kind="io") is None, "an idle close is no error"
    assert sample(text, "counter_redis_reconnects_total") == 0, "nor a reconnect to alert on"
    noisy = [m for level, m in levels_and_messages(stack.responder) if level in ("warning", "error")]
    assert noisy == [], noisy
