"""Every endpoint and error of the API, through FastCGI exactly as nginx sends it."""
import threading

import pytest

PROBLEM = "application/problem+json"


def assert_problem(reply, status):
    assert reply.status == status, reply
    assert reply.headers["content-type"] == PROBLEM
    body = reply.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["error"] == body["detail"]
    return body


def test_read_write_reset_cycle(responder, redis):
    first = responder.request("GET", "/read")
    assert first.status == 200
    assert first.headers["content-type"] == "application/json"
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["value"] == 0
    assert redis.cli("EXISTS", "api_counter").stdout.strip() == "0", "a read must never write"

    for expected in (1, 2, 3):
        reply = responder.request("POST", "/write")
        assert reply.status == 200
        body = reply.json()
        assert body["value"] == expected and body["operation"] == "increment"
        assert isinstance(body["timestamp"], float)
    assert responder.request("GET", "/read").json()["value"] == 3
    assert redis.get() == "3"

    reset = responder.request("POST", "/reset").json()
    assert reset["value"] == 0 and reset["operation"] == "reset"
    assert redis.get() == "0"
    assert responder.request("GET", "/read").json()["value"] == 0


def test_body_shapes_match_the_original_flask_service(responder):
    assert list(responder.request("GET", "/read").json()) == ["value", "timestamp"]
    assert list(responder.request("POST", "/write").json()) == ["value", "operation", "timestamp"]
    assert list(responder.request("POST", "/reset").json()) == ["value", "operation", "timestamp"]
    assert responder.request("GET", "/health").json().keys() == {"status", "redis", "timestamp"}


def test_health_and_livez(responder):
    health = responder.request("GET", "/health")
    assert health.status == 200
    assert health.json()["status"] == "healthy" and health.json()["redis"] == "connected"
    livez = responder.request("GET", "/livez")
    assert livez.status == 200 and livez.json() == {"status": "alive"}


def test_unknown_path_is_404(responder):
    for path in ("/", "/nope", "/read/", "/READ", "/write/1"):
        assert_problem(responder.request("GET", path), 404)


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/read", "GET, HEAD"), ("DELETE", "/read", "GET, HEAD"), ("GET", "/write", "POST"),
    ("PUT", "/write", "POST"), ("GET", "/reset", "POST"), ("POST", "/health", "GET, HEAD"),
    ("PATCH", "/livez", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(responder, redis, method, path, allow):
    reply = responder.request(method, path)
    assert_problem(reply, 405)
    assert reply.headers["allow"] == allow
    assert redis.cli("EXISTS", "api_counter").stdout.strip() == "0"


def test_head_has_headers_but_no_body(responder):
    reply = responder.request("HEAD", "/read")
    assert reply.status == 200
    assert int(reply.headers["content-length"]) > 0
    assert reply.body == b""


def test_only_nginx_s_normalised_path_routes(responder):
    # DOCUMENT_URI (nginx's $uri, without the query) is the path; other params a web server may
    # send are not read, so they cannot route a request around nginx's checks.
    reply = responder.request("GET", "/read", params={"QUERY_STRING": "value=99"})
    assert reply.status == 200 and reply.json()["value"] == 0
    reply = responder.request("GET", "/read", params={"DOCUMENT_URI": None, "SCRIPT_NAME": "/read",
                                                      "REQUEST_URI": "/read?value=99"})
    assert_problem(reply, 404)


def test_small_body_is_accepted_and_ignored(responder):
    reply = responder.request("POST", "/write", body=b"{}")
    assert reply.status == 200 and reply.json()["value"] == 1


def test_large_body_is_413_and_not_counted(responder, redis):
    reply = responder.request("POST", "/write", body=b"x" * 5000)
    assert_problem(reply, 413)
    assert redis.cli("EXISTS", "api_counter").stdout.strip() == "0"
    # The worker that refused it still serves.
    for _ in range(8):
        assert responder.request("GET", "/read").status == 200


def test_declared_length_over_limit_is_413(responder):
    assert_problem(responder.request("POST", "/write", params={"CONTENT_LENGTH": "1048576"}), 413)


def test_invalid_content_length_is_400(responder):
    assert_problem(responder.request("POST", "/write", params={"CONTENT_LENGTH": "12abc"}), 400)


def test_missing_method_and_path_are_handled(responder):
    reply = responder.request("GET", "/read", params={"REQUEST_METHOD": None, "DOCUMENT_URI": None,
                                                      "REQUEST_URI": None, "SCRIPT_NAME": None})
    assert_problem(reply, 404)


def test_concurrent_writes_are_exact(responder, redis):
    """8 clients x 100 writes: the counter ends at exactly 800 and no value is handed out twice."""
    values, errors = [], []
    lock = threading.Lock()

    def client():
        for _ in range(100):
            reply = responder.request("POST", "/write")
            with lock:
                if reply.status == 200:
                    values.append(reply.json()["value"])
                else:
                    errors.append(reply)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(values) == 800
    assert len(set(values)) == 800
    assert sorted(values) == list(range(1, 801))
    assert redis.get() == "800"
    assert responder.request("GET", "/read").json()["value"] == 800


def test_custom_counter_key_and_db(redis, start_responder):
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                                 "COUNTER_KEY": "tenant:a:hits", "REDIS_DB": "2"})
    assert responder.request("POST", "/write").json()["value"] == 1
    assert redis.get("tenant:a:hits", db=2) == "1"
    assert redis.cli("EXISTS", "api_counter").stdout.strip() == "0"
    assert redis.cli("EXISTS", "tenant:a:hits").stdout.strip() == "0"


def test_redis_over_unix_socket(tmp, start_redis, start_responder):
    server = start_redis(extra=["--unixsocket", str(tmp / "redis.sock"), "--unixsocketperm", "700"])
    responder = start_responder({"REDIS_HOST": str(tmp / "redis.sock")})
    assert responder.request("POST", "/write").json()["value"] == 1
    assert server.get() == "1"
