"""Redis down, slow, restarted, protected, or holding a bad value: clear answers, no hang, no loss."""
import signal
import subprocess
import threading
import time

from conftest import Redis, wait_for
from test_api import assert_problem


def test_redis_killed_then_back_same_process(responder, redis):
    assert responder.request("POST", "/write").json()["value"] == 1
    pid = responder.proc.pid
    redis.kill()

    started = time.monotonic()
    reply = responder.request("POST", "/write")
    elapsed = time.monotonic() - started
    assert_problem(reply, 503)
    assert reply.headers["retry-after"] == "1"
    assert elapsed < 5, "a request must not hang while Redis is down"
    for path in ("/read", "/health"):
        method = "GET"
        got = responder.request(method, path)
        assert got.status == 503 and got.headers["retry-after"] == "1"
    assert responder.request("GET", "/health").json()["status"] == "unhealthy"
    assert responder.request("GET", "/livez").status == 200, "liveness never depends on Redis"

    redis.start()  # same port, same AOF
    back = time.monotonic()
    wait_for(lambda: responder.request("POST", "/write").status == 200, timeout=1.0,
             what="service to recover within a second of Redis answering")
    recovered = time.monotonic() - back
    # Every worker is back too, at once (the first answer is shared news that ends each backoff):
    # a run of requests all succeed.
    statuses = [responder.request("GET", "/read").status for _ in range(12)]
    assert statuses == [200] * 12
    assert responder.proc.pid == pid and responder.proc.poll() is None
    assert int(redis.get()) >= 2, "the write before the outage survived via AOF"
    print(f"recovered {recovered:.3f}s after Redis answered")


def test_starts_while_redis_is_down(tmp, start_responder):
    redis = Redis(tmp)  # not started yet: its port is closed
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port)})
    assert responder.request("GET", "/livez").status == 200
    health = responder.request("GET", "/health")
    assert health.status == 503 and health.json()["redis"] == "disconnected"
    assert_problem(responder.request("GET", "/read"), 503)
    redis.start()
    try:
        wait_for(lambda: responder.request("GET", "/health").status == 200, timeout=2, what="health to turn 200")
        assert responder.request("POST", "/write").status == 200
    finally:
        redis.stop()
    assert any(l["message"] == "redis connect failed" for l in responder.log_lines())


def test_paused_redis_times_out_with_503(responder, redis):
    assert responder.request("GET", "/read").status == 200
    redis.pause()
    try:
        started = time.monotonic()
        reply = responder.request("GET", "/read")
        elapsed = time.monotonic() - started
        assert_problem(reply, 503)
        # REDIS_TIMEOUT_MS=500 for the first try, then a fresh connect (300 ms) for the retry.
        assert elapsed < 3, f"took {elapsed:.2f}s"
        assert responder.request("GET", "/livez").status == 200
    finally:
        redis.resume()
    wait_for(lambda: responder.request("GET", "/read").status == 200, timeout=2, what="recovery after pause")


def test_non_integer_value_is_500_and_left_alone(responder, redis):
    redis.cli("SET", "api_counter", "hello")
    for method, path in (("GET", "/read"), ("POST", "/write")):
        body = assert_problem(responder.request(method, path), 500)
        assert "not a 64-bit integer" in body["detail"]
    assert redis.get() == "hello"
    # An explicit reset is the way out.
    assert responder.request("POST", "/reset").status == 200
    assert redis.get() == "0"


def test_wrong_type_is_500_and_left_alone(responder, redis):
    redis.cli("RPUSH", "api_counter", "a")
    assert_problem(responder.request("GET", "/read"), 500)
    assert_problem(responder.request("POST", "/write"), 500)
    assert redis.cli("TYPE", "api_counter").stdout.strip() == "list"


def test_overflow_is_a_clear_409(responder, redis):
    redis.cli("SET", "api_counter", str(2**63 - 1))
    body = assert_problem(responder.request("POST", "/write"), 409)
    assert "maximum" in body["detail"]
    assert redis.get() == str(2**63 - 1)
    assert responder.request("GET", "/read").json()["value"] == 2**63 - 1


def test_password(tmp, start_redis, start_responder):
    redis = start_redis(password="pw-Secret-1")
    good = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                            "REDIS_PASSWORD": "pw-Secret-1"})
    assert good.request("POST", "/write").json()["value"] == 1
    good.stop()
    (tmp / "fcgi.sock").unlink(missing_ok=True)
    bad = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                           "REDIS_PASSWORD": "wrong-Secret-2"})
    reply = bad.request("POST", "/write")
    assert_problem(reply, 500)
    assert "retry-after" not in reply.headers, "a wrong password is not cured by retrying"
    missing = bad.log()
    assert "WRONGPASS" in missing
    assert "wrong-Secret-2" not in missing and "pw-Secret-1" not in missing
    assert redis.get() == "1"


def test_acl_user_with_only_the_commands_it_needs(tmp, start_redis, start_responder):
    redis = start_redis(password="admin-pw")
    redis.cli("ACL", "SETUSER", "counter", "on", ">counter-pw", "~api_counter",
              "+get", "+incr", "+set", "+ping", "+select")
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                                 "REDIS_USERNAME": "counter", "REDIS_PASSWORD": "counter-pw"})
    assert responder.request("POST", "/write").json()["value"] == 1
    assert responder.request("GET", "/read").json()["value"] == 1
    assert responder.request("GET", "/health").status == 200
    assert responder.request("POST", "/reset").status == 200
    assert redis.get() == "0"
    # The same user on a key it may not touch: a configuration error (500, no Retry-After: a
    # retry cannot help), not a crash; test_redis_errors.py checks its log line and metric.
    responder.stop()
    (tmp / "fcgi.sock").unlink(missing_ok=True)
    other = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                             "REDIS_USERNAME": "counter", "REDIS_PASSWORD": "counter-pw",
                             "COUNTER_KEY": "someone_else"})
    reply = other.request("POST", "/write")
    assert_problem(reply, 500)
    assert "retry-after" not in reply.headers


def test_sigterm_during_a_request_still_answers_it(redis, start_responder):
    # A command timeout well above the pause, so the request waits instead of failing.
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "REDIS_TIMEOUT_MS": "5000"})
    assert responder.request("GET", "/read").status == 200
    redis.pause()
    result = {}

    def slow_request():
        result["reply"] = responder.request("POST", "/write")

    client = threading.Thread(target=slow_request)
    client.start()
    wait_for(lambda: responder.busy_workers() == 1, what="the request to wait on the paused Redis")
    responder.proc.send_signal(signal.SIGTERM)
    responder.wait_for_log("shutting down")
    redis.resume()
    client.join(timeout=10)
    assert result["reply"].status == 200, result["reply"]
    assert result["reply"].json()["value"] == 1
    assert responder.proc.wait(timeout=10) == 0
    assert not (responder.socket).exists(), "the socket is removed on shutdown"
    messages = [l["message"] for l in responder.log_lines()]
    assert "shutting down" in messages and messages[-1] == "counter-fcgi stopped"
    assert redis.get() == "1"


def test_shutdown_deadline_ends_the_process_without_waiting_on_a_stuck_worker(redis, start_responder):
    # A worker stuck on a paused Redis (command timeout 5 s) past SHUTDOWN_TIMEOUT_MS: the process
    # says so and ends at once with status 1, socket removed, rather than tear down under the worker.
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "REDIS_TIMEOUT_MS": "5000",
                                 "SHUTDOWN_TIMEOUT_MS": "300", "FCGI_THREADS": "2"})
    assert responder.request("GET", "/read").status == 200
    redis.pause()
    client = threading.Thread(target=lambda: subprocess.run(
        ["cgi-fcgi", "-bind", "-connect", str(responder.socket)], capture_output=True, timeout=15,
        env={"REQUEST_METHOD": "POST", "DOCUMENT_URI": "/write"}))
    client.start()
    wait_for(lambda: responder.busy_workers() == 1, what="a worker stuck on the paused Redis")
    started = time.monotonic()
    responder.proc.send_signal(signal.SIGTERM)
    status = responder.proc.wait(timeout=10)
    took = time.monotonic() - started
    redis.resume()
    client.join(timeout=15)
    assert status == 1, "an unclean stop is not reported as a clean one"
    assert 0.25 < took < 2.0, f"bounded by SHUTDOWN_TIMEOUT_MS, not by the stuck call ({took:.2f}s)"
    assert not responder.socket.exists(), "the socket is removed all the same"
    lines = responder.log_lines()
    timed_out = [l for l in lines if l["message"] == "shutdown timed out"]
    assert timed_out and timed_out[0]["workers.unfinished"] == "1"
    assert "counter-fcgi stopped" not in [l["message"] for l in lines]
