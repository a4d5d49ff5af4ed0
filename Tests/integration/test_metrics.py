"""Prometheus metrics: served only on nginx's internal metrics server, true to what happened."""
import re
import signal
import socket
import subprocess
import time

from conftest import KEY_READ, KEY_WRITE, wait_for


def scrape(stack, path="/metrics"):
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"http://127.0.0.1:{stack.metrics_port}{path}"],
                         capture_output=True, text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def sample(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_sample(stack, name, expected, timeout=5.0, **labels):
    """The scrape once `name{labels}` reaches `expected`: datagrams are counted a moment after the answer."""
    deadline = time.monotonic() + timeout
    while True:
        _, text = scrape(stack)
        found = sample(text, name, **labels)
        if found == expected or time.monotonic() > deadline:
            assert found == expected, (found, expected)
            return text
        time.sleep(0.05)


def test_metrics_count_requests_by_route_and_status(stack):
    for _ in range(3):
        assert stack.curl("POST", "/write", KEY_WRITE).status == 200
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    assert stack.curl("GET", "/read").status == 401  # refused by nginx: never reaches counter-fcgi
    stack.curl("POST", "/write", KEY_WRITE, headers=['Idempotency-Key: "m-1"'])
    stack.curl("POST", "/write", KEY_WRITE, headers=['Idempotency-Key: "m-1"'])
    code, text = scrape(stack)
    assert code == 200
    assert sample(text, "counter_http_requests_total", route="/write", status="200") == 5
    assert sample(text, "counter_http_requests_total", route="/read", status="200") == 1
    assert sample(text, "counter_http_request_duration_seconds_count", route="/write") == 5
    assert sample(text, "counter_http_request_duration_seconds_bucket", route="/write", le="+Inf") == 5
    assert sample(text, "counter_idempotent_replays_total") == 1
    assert sample(text, "counter_build_info", version="1.0.0") == 1
    assert sample(text, "counter_worker_threads") == 4
    assert sample(text, "counter_redis_connected_workers") == 4
    assert sample(text, "counter_workers_busy") == 1, "the scrape itself is being served"


def test_scrapes_are_not_api_requests_and_open_no_connection(stack):
    assert stack.curl("GET", "/read", KEY_READ).status == 200  # nginx now holds a kept connection
    _, first = scrape(stack)
    for _ in range(5):
        assert scrape(stack)[0] == 200
    _, text = scrape(stack)
    assert "route=\"other\"" not in text, "a scrape is not counted as a request for an unknown path"
    assert "route=\"/metrics\"" not in text
    accepted = sample(text, "counter_fastcgi_connections_total") - sample(first, "counter_fastcgi_connections_total")
    assert accepted == 0, "scrapes reuse nginx's kept connections"


def test_redis_errors_and_reconnects_are_counted(stack):
    assert stack.curl("GET", "/read", KEY_READ).status == 200
    stack.redis.kill()
    assert stack.curl("GET", "/read", KEY_READ).status == 503
    _, text = scrape(stack)
    assert (sample(text, "counter_redis_errors_total", kind="io") or 0) + \
        (sample(text, "counter_redis_errors_total", kind="connect") or 0) >= 1
    assert sample(text, "counter_http_requests_total", route="/read", status="503") == 1
    assert sample(text, "counter_redis_connected_workers") < 4
    stack.redis.start()
    for _ in range(40):
        stack.curl("GET", "/read", KEY_READ)
    _, text = scrape(stack)
    assert sample(text, "counter_redis_reconnects_total") >= 1


def test_metrics_are_not_public_and_nginx_figures_are_internal(stack):
    public = stack.curl("GET", "/metrics", KEY_READ)
    assert public.status == 404 and b"counter_http" not in public.body
    assert stack.curl("GET", "/nginx_status", KEY_READ).status == 404
    code, text = scrape(stack, "/nginx_status")
    assert code == 200 and "Active connections" in text
    assert scrape(stack, "/read")[0] == 404


def test_requests_nginx_answers_itself_are_counted_at_the_edge(start_stack):
    stack = start_stack({"RATE_LIMIT_PER_KEY": "1r/m", "RATE_LIMIT_PER_KEY_BURST": "2"})
    statuses = [status for status, _ in stack.parallel("GET", "/read", KEY_READ, 40, parallel=8)]
    limited = statuses.count(429)
    assert statuses.count(200) == 3 and limited == 37, statuses  # the burst of 2, then 1 per minute
    assert stack.curl("GET", "/read").status == 401
    assert stack.curl("GET", "/read", "tk-unknown-key-0000000000").status == 403
    assert stack.curl("GET", "/nope", KEY_READ).status == 404
    assert stack.curl("DELETE", "/write", KEY_WRITE).status == 405
    assert stack.curl("GET", "/read", host="elsewhere.example").status is None  # 444: closed unanswered
    text = wait_for_sample(stack, "counter_edge_requests_total", 37, route="/read", status="429")
    assert sample(text, "counter_edge_requests_total", route="/read", status="401") == 1
    assert sample(text, "counter_edge_requests_total", route="/read", status="403") == 1
    assert sample(text, "counter_edge_requests_total", route="other", status="404") == 1
    assert sample(text, "counter_edge_requests_total", route="/write", status="405") == 1
    assert sample(text, "counter_edge_requests_total", route="/read", status="444") == 1
    # What counter-fcgi answered is counted once, by counter-fcgi, not again at the edge.
    assert sample(text, "counter_edge_requests_total", route="/read", status="200") is None
    assert sample(text, "counter_http_requests_total", route="/read", status="200") == 3
    assert sample(text, "counter_edge_log_invalid_total") == 0
    assert sample(text, "counter_edge_log_dropped_total") == 0
    assert "syslog" not in stack.error_log.read_text()


def edge_port(stack):
    return int(stack.responder.env["EDGE_LOG_ADDRESS"].rsplit(":", 1)[1])


def edge_429s_accounted(stack, expected, timeout=10.0):
    """(counted, dropped) for /read 429s once they add up to `expected`; asserts that they do."""
    deadline = time.monotonic() + timeout
    while True:
        _, text = scrape(stack)
        counted = sample(text, "counter_edge_requests_total", route="/read", status="429") or 0
        dropped = sample(text, "counter_edge_log_dropped_total")
        if counted + dropped == expected or time.monotonic() > deadline:
            assert counted + dropped == expected, (counted, dropped, expected)
            return counted, dropped
        time.sleep(0.05)


def test_stray_datagrams_are_counted_as_invalid_and_invent_no_labels(stack):
    junk = [b"", b"\xff" * 600, b"route=/admin status=429", b"route=/read status=999",
            b"<190>Nov 29 16:00:54 counter_edge: route=/read status=42", b"x" * 65000]
    with socket.socket(type=socket.SOCK_DGRAM) as s:
        for payload in junk:
            s.sendto(payload, ("127.0.0.1", edge_port(stack)))
    text = wait_for_sample(stack, "counter_edge_log_invalid_total", len(junk))
    assert "counter_edge_requests_total{" not in text
    assert "/admin" not in text and 'status="999"' not in text
    assert stack.curl("GET", "/read", KEY_READ).status == 200


def test_gateway_errors_are_counted_at_the_edge_and_counting_survives_a_restart(start_stack, start_responder):
    stack = start_stack({"FASTCGI_TIMEOUT": "1s"})
    # counter-fcgi frozen: nginx answers 504 itself; the datagram waits in the socket buffer.
    stack.responder.proc.send_signal(signal.SIGSTOP)
    try:
        assert stack.curl("GET", "/read", KEY_READ).status == 504
    finally:
        stack.responder.proc.send_signal(signal.SIGCONT)
    wait_for_sample(stack, "counter_edge_requests_total", 1, route="/read", status="504")
    # Restarted on the same address: nginx's UDP socket finds the new process without a reload.
    stack.responder.stop()
    stack.responder.socket.unlink(missing_ok=True)
    assert stack.curl("GET", "/read", KEY_READ).status == 502  # nobody to count this one
    start_responder(dict(stack.responder.env))
    # nginx's next send reports the refusal of the one above (ICMP port unreachable) and loses
    # its own line; nginx reconnects at once, and from then on every line arrives.
    assert stack.curl("GET", "/read", "tk-unknown-key-0000000000").status == 403
    for _ in range(3):
        assert stack.curl("GET", "/read", "tk-unknown-key-0000000000").status == 403

    def counted():
        return sample(scrape(stack)[1], "counter_edge_requests_total", route="/read", status="403") or 0
    # The three after the first always arrive; the first may or may not (it arrives, if at all,
    # before them: one socket, in order).
    wait_for(lambda: counted() >= 3, what="the edge counts after the restart")
    assert counted() in (3, 4)
    _, text = scrape(stack)
    assert sample(text, "counter_edge_log_dropped_total") == 0


def test_under_a_429_flood_every_refusal_is_counted_or_shown_as_dropped(start_stack):
    stack = start_stack({"RATE_LIMIT_PER_KEY": "1r/m", "RATE_LIMIT_PER_KEY_BURST": "1"})
    statuses = [status for status, _ in stack.parallel("GET", "/read", KEY_READ, 1500, parallel=32)]
    limited = statuses.count(429)
    assert limited >= 1490 and statuses.count(200) + limited == 1500, set(statuses)
    counted, dropped = edge_429s_accounted(stack, limited)
    assert dropped <= limited * 0.01, "a loopback socket with a receive buffer keeps up"


def test_datagrams_the_kernel_drops_are_counted_as_dropped(stack):
    # counter-fcgi frozen while far more lines arrive than its receive buffer holds.
    line = b"<190>Nov 29 16:00:54 counter_edge: route=/read status=429"
    sent = 40000
    stack.responder.proc.send_signal(signal.SIGSTOP)
    try:
        with socket.socket(type=socket.SOCK_DGRAM) as s:
            for _ in range(sent):
                s.sendto(line, ("127.0.0.1", edge_port(stack)))
    finally:
        stack.responder.proc.send_signal(signal.SIGCONT)
    counted, dropped = edge_429s_accounted(stack, sent)
    assert counted > 0 and dropped > 0, (counted, dropped)


def test_nginx_connection_figures_come_with_the_scrape(stack):
    code, text = scrape(stack)
    assert code == 200
    assert sample(text, "nginx_connections", state="active") >= 1, "the scrape itself is a connection"
    for state in ("reading", "writing", "waiting"):
        assert sample(text, "nginx_connections", state=state) is not None, state
    assert text.index("counter_http_requests_total") < text.index("nginx_connections"), "appended after counter-fcgi's"
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert "error while linting" not in (check.stdout + check.stderr), check.stdout + check.stderr
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(names) == len(set(names)), "every metric family once"
    # While counter-fcgi is down the scrape fails as a whole: nothing appended to an error.
    stack.responder.stop()
    code, text = scrape(stack)
    assert code == 502 and "nginx_connections" not in text


def test_new_fastcgi_connections_are_counted_and_kept_ones_are_not(stack):
    def accepted():  # asked with cgi-fcgi: its own new connection is counted before the answer
        return sample(stack.responder.request("GET", "/metrics").body.decode(), "counter_fastcgi_connections_total")

    first = accepted()
    for _ in range(5):
        assert stack.responder.request("GET", "/read").status == 200  # cgi-fcgi: a connection each
    assert accepted() - first == 6
    before = accepted()
    for _ in range(20):
        assert stack.curl("GET", "/read", KEY_READ).status == 200
    # nginx keeps its connection between requests: at most one new one (if it had none idle) for
    # the 20 requests, besides this scrape's own.
    assert accepted() - before <= 2
