"""Faults under concurrent load, through nginx: nothing counted twice, nothing acknowledged lost,
every failure a clear and quick answer, recovery without restarts. Load loops are bounded in
count and time and talk to 127.0.0.1 only."""
import http.client
import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import KEY_READ, KEY_WRITE, ROOT, LoadThreads, wait_for


class Load(LoadThreads):
    """`clients` threads doing POST `path` (/write) through nginx until stopped (at most `limit` each)."""

    def __init__(self, port, clients=8, limit=5000, key=KEY_WRITE, path="/write"):
        self.port, self.key, self.limit, self.path = port, key, limit, path
        self.results = []          # (monotonic start, seconds taken, status, value or None)
        self.lock = threading.Lock()
        super().__init__(clients, self.client)

    def client(self, _index):
        for _ in range(self.limit):
            if self.stop.is_set():
                return
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", self.path, headers={"X-API-Key": self.key, "Host": "localhost"})
                reply = conn.getresponse()
                body = reply.read()
                conn.close()
                status = reply.status
                value = json.loads(body)["value"] if status == 200 else None
            except (OSError, http.client.HTTPException):
                status, value = None, None
            with self.lock:
                self.results.append((started, time.monotonic() - started, status, value))

    def values(self):
        return [v for _, _, s, v in self.results if s == 200]


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_redis_sigkill_under_write_load_loses_no_acknowledged_write(tmp, start_redis, start_stack, fsync):
    # always: every acknowledged INCR is on disk before Redis answers, so nothing acknowledged is
    # lost. everysec: usually written to the kernel before the reply, but while a background fsync
    # is still running (a busy disk) Redis postpones that write for up to 2 s and answers anyway,
    # so a killed process can lose the last ~2 s of acknowledged writes (seen once in CI: two values
    # handed out again). That bound is what is asserted for everysec.
    redis = start_redis(extra=["--appendfsync", fsync])
    stack = start_stack(responder_env={"REDIS_PORT": str(redis.port), "REDIS_TIMEOUT_MS": "500"})
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    with Load(stack.port) as load:
        time.sleep(1.5)
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(timeout=10)
        killed = time.monotonic()
        time.sleep(1.0)
        redis.start()  # same port, same AOF
        back = time.monotonic()
        time.sleep(2.0)
    values = load.values()
    statuses = {s for _, _, s, _ in load.results}
    final = int(redis.get())
    assert len(values) > 100, "the load ran"
    assert statuses <= {200, 503}, f"the outage is a clear 503, nothing else: {statuses}"
    if fsync == "always":
        assert len(values) == len(set(values)), "no value handed out twice"
        assert max(values) <= final, "every acknowledged write is in the final counter"
        assert len(values) <= final
        # Writes that were applied but not acknowledged (Redis died before answering) are the only slack.
        failed = sum(1 for _, _, s, _ in load.results if s != 200)
        assert final - len(values) <= failed
    else:
        # What may be lost is bounded by Redis's postponed AOF write: at most the writes
        # acknowledged in the last 2 s before the kill (a value lost is later handed out again).
        recent = sum(1 for st, d, s, _ in load.results if s == 200 and killed - 2.5 < st + d <= killed)
        lost = len(values) - len(set(values)) + max(0, max(values) - final)
        assert lost <= recent, f"{lost} acknowledged writes lost, more than the last 2 s ({recent})"
    slowest_failure = max((d for _, d, s, _ in load.results if s != 200), default=0)
    assert slowest_failure < 3, f"a failure took {slowest_failure:.2f}s: requests must not hang"
    first_ok_after = min(st + d for st, d, s, _ in load.results if s == 200 and st >= back)
    assert first_ok_after - back < 1.5, "writes succeed again within a second of Redis coming back"
    outage = [s for st, _, s, _ in load.results if killed + 0.1 < st < back - 0.1]
    assert outage and set(outage) == {503}


def test_paused_redis_under_load_fails_fast_and_recovers_alone(start_stack):
    stack = start_stack(responder_env={"REDIS_TIMEOUT_MS": "300", "REDIS_CONNECT_TIMEOUT_MS": "200"},
                        nginx_env={"FASTCGI_TIMEOUT": "3s"})
    with Load(stack.port, clients=8) as load:
        time.sleep(0.5)
        stack.redis.pause()
        paused = time.monotonic()
        time.sleep(2.0)
        # Liveness stays up while Redis hangs: the workers are not all stuck.
        assert stack.curl("GET", "/livez").status == 200
        stack.redis.resume()
        resumed = time.monotonic()
        time.sleep(1.5)
    # Sent while Redis was paused and answered before it resumed: none can have been served. (A
    # request still waiting at the resume may be served then: a 503 here takes the command and
    # connect timeouts, about 0.5 s and more on a loaded machine.)
    during = [(d, s) for st, d, s, _ in load.results if st > paused + 0.1 and st + d < resumed]
    assert during and {s for _, s in during} <= {503, 504}
    assert max(d for _, d, _, _ in load.results) < 3.5, "every request bounded by the Redis and nginx timeouts"
    after = [s for st, _, s, _ in load.results if st > resumed + 1.0]
    assert after and set(after) == {200}, "recovered without a restart"
    values = load.values()
    assert len(values) == len(set(values))


def upstream_failures(stack):
    """nginx's error-log lines about counter-fcgi: (connect refused or no socket, anything else)."""
    lines = [l for l in stack.error_log.read_text(errors="replace").splitlines()
             if ("[error]" in l or "[crit]" in l) and "upstream" in l]  # ENOENT is logged as crit
    refused = [l for l in lines if "connect() to unix:" in l and "failed" in l]
    return refused, [l for l in lines if l not in refused]


def test_responder_sigterm_under_load_answers_every_accepted_request(start_stack, start_responder):
    # 16 clients on 4 workers keep connections queued on the socket when SIGTERM comes: each one
    # already queued is answered; connections tried after the socket stopped accepting are refused
    # (nginx's 502, logged as a failed connect). The one other failure allowed is keep-alive's own
    # race: a request nginx sends on a kept connection as counter-fcgi closes it (nginx logs a
    # broken pipe while sending, or a reset while reading the response). It was never read, so
    # never done: the counts below prove it.
    stack = start_stack()
    with Load(stack.port, clients=16) as load:
        time.sleep(1.0)
        stack.responder.proc.send_signal(signal.SIGTERM)
        assert stack.responder.proc.wait(timeout=15) == 0, "a clean exit"
        stopped = time.monotonic()
        time.sleep(0.5)
        again = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(stack.redis.port)})
        restarted = time.monotonic()
        time.sleep(1.0)
    statuses = {s for _, _, s, _ in load.results}
    assert statuses <= {200, 502}, statuses
    refused, others = upstream_failures(stack)
    unread = [l for l in others if "(104: Connection reset by peer) while reading response header" in l
              or "(32: Broken pipe) while sending request" in l]
    dropped = [l for l in others if l not in unread]
    assert dropped == [], "an accepted request was dropped:\n" + "\n".join(dropped[:5])
    assert len(unread) <= 4, "kept connections reset under a request:\n" + "\n".join(unread[:5])
    assert sum(1 for _, _, s, _ in load.results if s == 502) <= len(refused) + len(unread)
    gap = [s for st, _, s, _ in load.results if stopped + 0.05 < st < restarted - 0.3]
    assert gap and set(gap) == {502}
    after = [s for st, _, s, _ in load.results if st > restarted + 0.2]
    assert after and set(after) == {200}
    values = load.values()
    assert len(values) == len(set(values))
    assert int(stack.redis.get()) == len(values), "every write was either answered 200 or not done"
    assert again.proc.poll() is None


def nginx_writing(stack):
    out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{stack.metrics_port}/nginx_status"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(re.search(r"Writing: (\d+)", out).group(1))


def test_sigterm_answers_the_requests_queued_on_the_socket(start_stack, redis):
    # Two workers held by a paused Redis, six more requests queued on the socket behind them:
    # SIGTERM then stops new connections, and every queued one is still answered.
    stack = start_stack(responder_env={"FCGI_THREADS": "2", "REDIS_TIMEOUT_MS": "5000"},
                        nginx_env={"FASTCGI_TIMEOUT": "10s"})
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    redis.pause()
    replies = []
    clients = [threading.Thread(target=lambda: replies.append(stack.curl("POST", "/write", KEY_WRITE)))
               for _ in range(8)]
    for client in clients:
        client.start()
    # nginx is handling all eight (stub_status's "Writing" counts requests waiting on the upstream,
    # and this status request): two reached the workers, which wait on Redis; six are queued.
    wait_for(lambda: nginx_writing(stack) >= 9, what="eight requests in nginx's hands")
    stack.responder.proc.send_signal(signal.SIGTERM)
    stack.responder.wait_for_log("shutting down")
    refused = stack.curl("GET", "/livez")
    redis.resume()
    for client in clients:
        client.join(timeout=15)
    assert refused.status == 502, "new connections are refused once stopping"
    assert sorted(r.status for r in replies) == [200] * 8, replies
    assert sorted(r.json()["value"] for r in replies) == list(range(1, 9))
    assert stack.responder.proc.wait(timeout=10) == 0
    _, dropped = upstream_failures(stack)
    assert dropped == [], dropped


def test_responder_sigkill_restart_serves_at_once(start_stack, start_responder):
    stack = start_stack()
    assert stack.curl("POST", "/write", KEY_WRITE).status == 200
    stack.responder.proc.kill()
    stack.responder.proc.wait(timeout=10)
    assert stack.responder.socket.exists(), "SIGKILL leaves the socket behind"
    reply = stack.curl("POST", "/write", KEY_WRITE)
    assert reply.status == 502 and reply.headers["content-type"].startswith("application/problem+json")
    start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(stack.redis.port)})
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 2


# --- malformed FastCGI straight to the socket -------------------------------------------------

def record(kind, content, request_id=1, version=1, declared=None):
    length = len(content) if declared is None else declared
    return struct.pack(">BBHHBx", version, kind, request_id, length, 0) + content


def name_value(name, value):
    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


BEGIN = record(1, struct.pack(">HB5x", 1, 0))
GOOD_PARAMS = name_value(b"REQUEST_METHOD", b"GET") + name_value(b"DOCUMENT_URI", b"/read")


def send_raw(path, payload, linger=0.2):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(3)
        conn.connect(str(path))
        try:
            conn.sendall(payload)
            time.sleep(linger)
            conn.shutdown(socket.SHUT_WR)
            return conn.recv(65536)
        except OSError:
            return b""


MALFORMED = {
    "bad version": record(1, struct.pack(">HB5x", 1, 0), version=9) + record(4, GOOD_PARAMS),
    "unknown record type": BEGIN + record(77, b"xyz"),
    "huge declared length, truncated": BEGIN + record(4, b"A" * 100, declared=65535),
    "param length past the record": BEGIN + record(4, b"\x7f\x7fREQUEST_METHOD") + record(4, b""),
    "4-byte lengths near 2^31": BEGIN + record(4, b"\xff\xff\xff\xf0\x80\x00\x00\x01AB") + record(4, b""),
    "name without value": BEGIN + record(4, b"\x0e") + record(4, b""),
    "params then abrupt close": BEGIN + record(4, GOOD_PARAMS),
    "header cut in half": b"\x01\x01\x00",
    "role filter": record(1, struct.pack(">HB5x", 3, 0)) + record(4, GOOD_PARAMS) + record(4, b"") + record(5, b""),
    "garbage": bytes(range(256)) * 4,
}


def test_malformed_fastcgi_records_never_hurt_the_responder(responder):
    results = {}
    stop = threading.Event()
    good = []

    def steady_client():
        while not stop.is_set() and len(good) < 200:
            good.append(responder.request("GET", "/read").status)

    client = threading.Thread(target=steady_client)
    client.start()
    try:
        for name, payload in MALFORMED.items():
            results[name] = send_raw(responder.socket, payload)
            assert responder.proc.poll() is None, f"the responder died on: {name}"
    finally:
        stop.set()
        client.join(timeout=30)
    assert good and set(good) == {200}, "other clients kept being served"
    # A well-formed request on the same kind of raw connection still works.
    raw = send_raw(responder.socket, BEGIN + record(4, GOOD_PARAMS) + record(4, b"") + record(5, b""))
    assert b"Status: 200 OK" in raw and b'"value":0' in raw
    assert responder.request("POST", "/write").json()["value"] == 1


def read_to_eof(conn):
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_connection_closes_at_once_after_a_whole_request_and_lingers_after_an_unread_body(responder):
    """After the end of stdin the responder closes plainly (nothing more can come from the web
    server, so the socket is gone when the answer's end is read: a write fails). With a body
    longer than it reads, it keeps libfcgi's lingering close: the client may go on writing."""
    whole = BEGIN + record(4, GOOD_PARAMS) + record(4, b"") + record(5, b"")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(responder.socket))
        conn.sendall(whole)
        answer = read_to_eof(conn)
        assert b"Status: 200 OK" in answer and b'"value":0' in answer
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(3):  # the first write may still be taken in before the close is seen
                conn.send(b"x")
                time.sleep(0.05)

    body = b"b" * 60000
    params = GOOD_PARAMS + name_value(b"CONTENT_LENGTH", b"300000")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(responder.socket))
        conn.sendall(BEGIN + record(4, params) + record(4, b"") + record(5, body) + record(5, body))
        answer = read_to_eof(conn)
        assert b"Status: 413" in answer and b"application/problem+json" in answer
        # libfcgi is still reading (and throwing away) what comes: more of the body is taken.
        conn.sendall(record(5, body))
        conn.sendall(record(5, b""))
    assert responder.request("GET", "/read").status == 200


KEPT_BEGIN = record(1, struct.pack(">HB5x", 1, 1))  # FCGI_KEEP_CONN, as nginx's fastcgi_keep_conn sends


def kept_request(conn, params):
    """One request on a kept connection; returns its stdout once FCGI_END_REQUEST came."""
    conn.sendall(KEPT_BEGIN + record(4, params) + record(4, b"") + record(5, b""))
    data, stdout = b"", b""
    while True:
        while len(data) < 8:
            chunk = conn.recv(65536)
            assert chunk, "the connection closed before the end of the response"
            data += chunk
        _, kind, _, length, padding = struct.unpack(">BBHHBx", data[:8])
        while len(data) < 8 + length + padding:
            chunk = conn.recv(65536)
            assert chunk, "the connection closed inside a record"
            data += chunk
        content, data = data[8:8 + length], data[8 + length + padding:]
        if kind == 6:
            stdout += content
        if kind == 3:
            assert data == b"", "nothing after the end of the response"
            return stdout


WRITE_PARAMS = name_value(b"REQUEST_METHOD", b"POST") + name_value(b"DOCUMENT_URI", b"/write")


def test_kept_connection_serves_request_after_request(responder):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(responder.socket))
        answers = [kept_request(conn, WRITE_PARAMS) for _ in range(5)]
        assert [json.loads(a.split(b"\r\n\r\n", 1)[1])["value"] for a in answers] == [1, 2, 3, 4, 5]
        assert b'"value":5' in kept_request(conn, GOOD_PARAMS)
    # The web server closing a kept connection is no error: the next client is served as usual.
    assert responder.request("GET", "/read").json()["value"] == 5
    assert "error" not in responder.log().lower()


def test_idle_kept_connections_never_hold_a_worker(start_responder, redis):
    """libfcgi's own accept binds a kept connection to a thread that then waits on it: with more
    idle kept connections than threads, a new connection would wait for ever. Here 2 workers and
    6 idle kept connections: new connections and the kept ones are all still answered."""
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "FCGI_THREADS": "2"})
    kept = []
    try:
        for _ in range(6):
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(5)  # a stalled answer fails the test instead of hanging it
            conn.connect(str(responder.socket))
            assert b"Status: 200 OK" in kept_request(conn, WRITE_PARAMS)
            kept.append(conn)
        assert responder.request("POST", "/write", timeout=5).json()["value"] == 7
        for index, conn in enumerate(reversed(kept)):
            assert b'"value":%d' % (8 + index) in kept_request(conn, WRITE_PARAMS)
        # Stopping with idle kept connections open ends promptly and cleanly.
        started = time.monotonic()
        assert responder.terminate(timeout=8) == 0
        assert time.monotonic() - started < 6, "well within the 10 s shutdown timeout"
        for conn in kept:
            assert conn.recv(16) == b"", "each kept connection is closed at the stop"
    finally:
        for conn in kept:
            conn.close()


# --- hostile HTTP through nginx ---------------------------------------------------------------

def raw_http(port, payload, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(payload)
        chunks = []
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else None


def test_invalid_methods_and_bodies_on_get(stack):
    for method in ("FOO", "TRACE", "CONNECT", "PROPFIND"):
        raw = raw_http(stack.port, f"{method} /read HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {KEY_READ}\r\n"
                                   "Connection: close\r\n\r\n".encode())
        assert status_of(raw) in (400, 405), (method, raw[:200])
        assert b"application/problem+json" in raw
    raw = raw_http(stack.port, b"G@T /read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 400 and b"application/problem+json" in raw
    # A body on GET is read and ignored; it cannot change anything.
    reply = stack.curl("GET", "/read", KEY_READ, data=b"value=1000")
    assert reply.status == 200 and reply.json()["value"] == 0
    assert stack.redis.cli("EXISTS", "api_counter").stdout.strip() == "0"


def test_duplicate_and_empty_api_key_headers(stack):
    # nginx judges a request by the first X-API-Key header; an empty one counts as none.
    first_wrong = stack.curl("GET", "/read", headers=["X-API-Key: wrong-key-wrong-key", f"X-API-Key: {KEY_READ}"])
    assert first_wrong.status == 403
    first_right = stack.curl("POST", "/write", headers=[f"X-API-Key: {KEY_READ}", f"X-API-Key: {KEY_WRITE}"])
    assert first_right.status == 403, "a read key first cannot be upgraded by a second header"
    empty = stack.curl("GET", "/read", headers=["X-API-Key;"])
    assert empty.status == 401


def test_nothing_reaches_the_responder_that_should_not(start_stack):
    stack = start_stack(responder_env={"DEBUG": "true"})
    for method, path, key in [("GET", "/read", None), ("GET", "/read", "wrong-key-wrong-key"),
                              ("POST", "/write", KEY_READ), ("DELETE", "/read", KEY_READ),
                              ("GET", "/nope", KEY_READ), ("GET", "/_refused/401/read", KEY_READ)]:
        assert stack.curl(method, path, key).status in (401, 403, 404, 405)
    assert stack.curl("POST", "/write", KEY_WRITE, data=b"x" * 5000).status == 413
    stack.responder.terminate()
    seen = [l for l in stack.responder.log_lines() if l["message"] == "request" and l["http.path"] != "/livez"]
    assert seen == [], seen


def test_slow_clients_are_cut_off_and_valid_clients_still_served(start_stack):
    stack = start_stack(nginx_env={"CLIENT_TIMEOUT": "2s"})
    slow = []
    for _ in range(50):  # bounded: 50 connections that trickle a header and never finish it
        conn = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
        conn.sendall(b"GET /read HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        slow.append(conn)
    try:
        started = time.monotonic()
        for _ in range(20):
            assert stack.curl("GET", "/read", KEY_READ).status == 200
        assert time.monotonic() - started < 5, "valid clients are not starved"
        time.sleep(3)
        closed = 0
        for conn in slow:
            try:
                conn.settimeout(1)
                data = conn.recv(4096)
                closed += data == b"" or status_of(data) == 408
            except OSError:
                closed += 1
        assert closed == len(slow), "every slow client was cut off by CLIENT_TIMEOUT"
    finally:
        for conn in slow:
            conn.close()


def test_no_definite_leak_under_valgrind():
    """scripts/leak-check.sh: ~450 requests of every kind, a Redis outage included, under memcheck."""
    out = subprocess.run(["bash", "scripts/leak-check.sh", "30"], capture_output=True, text=True, timeout=600,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "definitely lost: 0 bytes in 0 blocks" in out.stdout
    assert "ERROR SUMMARY: 0 errors" in out.stdout
    served = int(out.stdout.split("leak-check: ")[1].split()[0])
    assert served >= 400


def test_fuzzing_finds_no_crash():
    """A short libFuzzer run over the request handling (scripts/fuzz.sh runs longer on demand)."""
    out = subprocess.run(["bash", "scripts/fuzz.sh", "15"], capture_output=True, text=True, timeout=900,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = int(out.stdout.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 10_000, "the fuzzer really ran"
