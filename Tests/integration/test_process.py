"""The process itself: settings, the socket, logs and signals."""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading

import pytest

from conftest import BINARY, ROOT, free_port, wait_for
from faults import fault_library


def run_binary(args=(), env=None, timeout=10):
    return subprocess.run([str(BINARY)] + list(args), env=env or {}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("env,args,setting", [
    ({"REDIS_PORT": "abc"}, [], "REDIS_PORT"),
    ({"FCGI_THREADS": "0"}, [], "FCGI_THREADS"),
    ({"FCGI_LISTEN": "/no/scheme.sock"}, [], "FCGI_LISTEN"),
    ({"DEBUG": "perhaps"}, [], "DEBUG"),
    ({"REDIS_USERNAME": "u"}, [], "REDIS_USERNAME"),
    ({}, ["--redis-timeout-ms", "0"], "--redis-timeout-ms"),
    ({"EDGE_LOG_ADDRESS": "0.0.0.0:9146"}, [], "EDGE_LOG_ADDRESS"),
])
def test_invalid_setting_stops_with_one_clear_line(env, args, setting):
    out = run_binary(args, env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"counter-fcgi: invalid {setting}")


def test_unknown_flag_is_rejected():
    out = run_binary(["--no-such-flag"])
    assert out.returncode != 0
    assert "no-such-flag" in out.stderr


def test_help_documents_every_setting():
    out = run_binary(["--help"])
    assert out.returncode == 0
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "REDIS_USERNAME", "COUNTER_KEY",
                 "FCGI_LISTEN", "FCGI_THREADS", "FCGI_BACKLOG", "FCGI_IO_TIMEOUT_MS", "REDIS_CONNECT_TIMEOUT_MS", "REDIS_TIMEOUT_MS",
                 "SHUTDOWN_TIMEOUT_MS", "IDEMPOTENCY_TTL_SECONDS", "EDGE_LOG_ADDRESS", "DEBUG"):
        assert name in out.stdout, name


def test_socket_mode_is_0660(responder):
    mode = stat.S_IMODE(os.stat(responder.socket).st_mode)
    assert mode == 0o660, oct(mode)


def test_stale_socket_is_replaced(tmp, redis, start_responder):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp / "fcgi.sock"))
    stale.close()  # the path stays, nobody listens: what a SIGKILLed responder leaves
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port)})
    assert responder.request("GET", "/read").status == 200


def test_live_socket_is_not_stolen(responder, redis):
    env = dict(responder.env)
    out = run_binary([], env)
    assert out.returncode == 1
    assert "another process is serving" in out.stderr
    assert responder.request("GET", "/read").status == 200, "the first instance keeps its socket"


def test_edge_log_port_in_use_stops_with_a_clear_line_and_frees_the_socket(tmp):
    with socket.socket(type=socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = run_binary([], {"FCGI_LISTEN": f"unix:{tmp / 'fcgi.sock'}", "EDGE_LOG_ADDRESS": f"127.0.0.1:{port}"})
    assert out.returncode == 1
    assert f"cannot bind edge log address udp:127.0.0.1:{port}" in out.stderr
    assert not (tmp / "fcgi.sock").exists(), "the FastCGI socket made before is removed"


def test_path_that_is_not_a_socket_is_refused(tmp):
    (tmp / "fcgi.sock").write_text("precious")
    out = run_binary([], {"FCGI_LISTEN": f"unix:{tmp / 'fcgi.sock'}"})
    assert out.returncode == 1
    assert "is not a socket" in out.stderr
    assert (tmp / "fcgi.sock").read_text() == "precious"


def test_tcp_listen_on_loopback(redis, start_responder):
    port = free_port()
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                                 "FCGI_LISTEN": f"tcp:127.0.0.1:{port}"})
    assert responder.request("POST", "/write").json()["value"] == 1


def test_flags_override_environment(redis, start_responder, tmp):
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"},
                                args=["--redis-port", str(redis.port), "--counter-key", "from_flag"])
    assert responder.request("POST", "/write").json()["value"] == 1
    assert redis.get("from_flag") == "1"


def test_logs_are_json_lines_with_config_and_request_ids(redis, start_responder):
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "DEBUG": "true",
                                 "REDIS_PASSWORD": ""})
    responder.request("GET", "/read", params={"REQUEST_ID": "req-7f3a"})
    responder.request("GET", "/nope", params={"REQUEST_ID": "req-from-client", "HTTP_X_REQUEST_ID": "not-read"})
    assert responder.terminate() == 0
    lines = [json.loads(line) for line in responder.log().splitlines()]  # every line is JSON
    started = next(l for l in lines if l["message"] == "counter-fcgi started")
    assert started["threads"] == "4" and started["redis"] == f"127.0.0.1:{redis.port}"
    assert started["redis.password"] == "unset"
    requests = [l for l in lines if l["message"] == "request" and l["http.path"] != "/livez"]
    assert {"request.id": "req-7f3a", "http.status": "200"}.items() <= requests[0].items()
    assert requests[1]["request.id"] == "req-from-client" and requests[1]["http.status"] == "404"
    assert lines[-1]["message"] == "counter-fcgi stopped"


def test_no_request_lines_at_info(responder):
    responder.request("GET", "/read")
    responder.terminate()
    assert not [l for l in responder.log_lines() if l["message"] == "request"]


def test_password_never_logged(start_redis, start_responder):
    redis = start_redis(password="Zq9-secret-pw")
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
                                 "REDIS_PASSWORD": "Zq9-secret-pw", "DEBUG": "1"})
    assert responder.request("POST", "/write").status == 200
    redis.kill()
    assert responder.request("POST", "/write").status == 503
    responder.terminate()
    assert "Zq9-secret-pw" not in responder.log()
    assert "redis disconnected" in responder.log()


def test_sigint_stops_cleanly(responder):
    responder.proc.send_signal(2)
    assert responder.proc.wait(timeout=10) == 0
    assert not responder.socket.exists()


@pytest.mark.parametrize("case", ["xdg", "runtime", "runtime-list", "runtime-empty", "runtime-leading-colon", "none"])
def test_default_socket_is_the_same_for_counter_fcgi_and_nginx(tmp, case):
    # Without FCGI_LISTEN both sides derive the socket from the environment (systemd's
    # RUNTIME_DIRECTORY, XDG_RUNTIME_DIR, /tmp); they must land on the same path.
    a, b = tmp / "a", tmp / "b"
    a.mkdir()
    b.mkdir()
    env = {"xdg": {"XDG_RUNTIME_DIR": str(a)},
           "runtime": {"RUNTIME_DIRECTORY": str(b), "XDG_RUNTIME_DIR": str(a)},
           "runtime-list": {"RUNTIME_DIRECTORY": f"{b}:{a}"},
           "runtime-empty": {"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": str(a)},
           "runtime-leading-colon": {"RUNTIME_DIRECTORY": f":{b}", "XDG_RUNTIME_DIR": str(a)},
           "none": {}}[case]
    render_env = {"PATH": os.environ["PATH"], "API_KEY": "k" * 20, **env}
    out = subprocess.run(["sh", str(ROOT / "nginx" / "render.sh"), str(tmp / "nginx")], env=render_env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    nginx_socket = re.search(r"server unix:(\S+);", (tmp / "nginx" / "counter-api.conf").read_text()).group(1)
    if case == "none":
        # Not started: /tmp/counter-fcgi.sock may be in use. The probe resolves the address by
        # the server's own rule and names it when nothing answers there.
        probe = run_binary(["probe", "--timeout-ms", "200"], env)
        assert nginx_socket == "/tmp/counter-fcgi.sock"
        assert probe.returncode == 1 and f"unix:{nginx_socket}" in probe.stderr, probe.stderr
        return
    proc = subprocess.Popen([str(BINARY)], env={**env, "REDIS_PORT": str(free_port())},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(nginx_socket) or proc.poll() is not None, what="the socket")
        assert proc.poll() is None and stat.S_ISSOCK(os.stat(nginx_socket).st_mode)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_probe_is_a_real_health_check(responder):
    ok = run_binary(["probe", "--address", f"unix:{responder.socket}"])
    assert ok.returncode == 0, ok.stderr
    not_found = run_binary(["probe", "--address", f"unix:{responder.socket}", "--path", "/nope"])
    assert not_found.returncode == 1 and "/nope answered 404" in not_found.stderr
    # A hung process still has its socket, and the kernel even queues the connection: only the
    # answer tells. `test -S`, the check this replaces, passes here.
    responder.proc.send_signal(signal.SIGSTOP)
    try:
        assert subprocess.run(["test", "-S", str(responder.socket)]).returncode == 0
        hung = run_binary(["probe", "--address", f"unix:{responder.socket}", "--timeout-ms", "300"])
        assert hung.returncode == 1 and "no answer in time" in hung.stderr, hung.stderr
    finally:
        responder.proc.send_signal(signal.SIGCONT)
    gone = run_binary(["probe", "--address", f"unix:{responder.socket}.missing"])
    assert gone.returncode == 1 and "cannot connect" in gone.stderr
    bad = run_binary(["probe", "--address", "nowhere"])
    assert bad.returncode == 2 and "invalid --address" in bad.stderr and "must be unix:/path" in bad.stderr, bad.stderr


def test_nginx_started_as_root_runs_its_workers_unprivileged(stack):
    users = {subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
             for pid in stack.worker_pids()}
    if os.geteuid() == 0:
        assert users == {"nobody"}, users
    assert "root" not in users
    assert stack.curl("GET", "/livez").status == 200, "and they reach the 0660 socket through its group"


def test_a_listener_that_cannot_be_watched_again_stops_the_process_loudly(tmp, redis, start_responder):
    library = fault_library(tmp)
    # The readiness check's request re-arms once; the next request's re-arm is refused for good.
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "FCGI_THREADS": "2",
                                 "LD_PRELOAD": str(library), "FAIL_EPOLL_MODS_AFTER": "1"})
    assert responder.request("POST", "/write").json()["value"] == 1, "the connection in hand is answered"
    # Not deaf and alive: it says why and stops, with status 1, so its supervisor starts another.
    assert responder.proc.wait(timeout=20) == 1
    lines = responder.log_lines()
    assert any(l["message"] == "cannot watch the listening socket again" and l["level"] == "error" for l in lines)
    assert any(l["message"] == "stopping: the server cannot go on" and l["level"] == "critical" for l in lines)
    assert not responder.socket.exists(), "the socket is removed, as on any stop"
    assert redis.get() == "1"


@pytest.mark.parametrize("sends", [b"", b"\x01\x01\x00\x01\x00\x08"], ids=["nothing", "half-a-record"])
def test_a_stalled_peer_cannot_hold_a_worker(redis, start_responder, sends):
    # One worker; a peer connects (tcp: as any host allowed to reach it could) and stalls. Within
    # FCGI_IO_TIMEOUT_MS the worker drops it and serves the next request, and the peer sees its
    # connection closed.
    port = free_port()
    responder = start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "FCGI_THREADS": "1",
                                 "FCGI_LISTEN": f"tcp:127.0.0.1:{port}", "FCGI_IO_TIMEOUT_MS": "300"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as peer:
        peer.sendall(sends) if sends else None
        reply = responder.request("POST", "/write", timeout=10)
        assert reply.status == 200 and reply.json()["value"] == 1
        peer.settimeout(10)
        assert peer.recv(64) == b"", "the stalled connection was closed"


def test_an_edge_log_socket_that_cannot_time_out_stops_the_start(tmp, redis):
    # Its receive timeout is what lets the stop end the receiving thread: refused, the start stops
    # with one line instead of a process whose every stop would hang on that thread.
    library = fault_library(tmp)
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "FCGI_LISTEN": f"unix:{tmp / 'edge.sock'}",
           "EDGE_LOG_ADDRESS": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "LD_PRELOAD": str(library),
           "FAIL_SO_RCVTIMEO": "1"}
    out = run_binary(env=env, timeout=20)
    assert out.returncode == 1
    assert "cannot set the edge log socket's receive timeout" in out.stderr, out.stderr
    assert not (tmp / "edge.sock").exists(), "the socket is removed again"


def peer(behaviour):
    """A TCP listener on loopback that answers each connection as `behaviour` says (closes it at
    once, or sends HTTP instead of FastCGI): what the probe meets when the address is wrong."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            # The request read first: a close with unread data would be a reset, not an end.
            conn.recv(4096)
            if behaviour == "http":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    threading.Thread(target=serve, daemon=True).start()
    return server


def test_probe_over_tcp_and_against_what_is_not_a_responder():
    port = free_port()
    proc = subprocess.Popen([str(BINARY)], env={"FCGI_LISTEN": f"tcp:127.0.0.1:{port}", "REDIS_PORT": str(free_port())},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: run_binary(["probe", "--address", f"tcp:127.0.0.1:{port}"]).returncode == 0,
                 what="the probe over TCP")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = run_binary(["probe", "--address", f"tcp:127.0.0.1:{free_port()}"])
    assert refused.returncode == 1 and "cannot connect to" in refused.stderr, refused.stderr
    for behaviour, says in [("close", "closed the connection before answering"), ("http", "not a FastCGI answer")]:
        server = peer(behaviour)
        try:
            out = run_binary(["probe", "--address", f"tcp:127.0.0.1:{server.getsockname()[1]}", "--timeout-ms", "2000"])
        finally:
            server.close()
        assert out.returncode == 1 and says in out.stderr, (behaviour, out.stderr)


@pytest.mark.parametrize("listen,says", [
    ("tcp:127.0.0.1:{taken}", "cannot bind tcp:127.0.0.1:{taken}"),
    ("unix:{tmp}/no-such-folder/counter.sock", "cannot bind {tmp}/no-such-folder/counter.sock"),
    ("tcp:no-such-host.invalid:9000", "cannot resolve no-such-host.invalid"),
])
def test_an_address_it_cannot_listen_on_is_a_clear_start_error(tmp, listen, says):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        values = {"taken": taken.getsockname()[1], "tmp": tmp}
        out = run_binary([], {"FCGI_LISTEN": listen.format(**values), "REDIS_PORT": str(free_port())})
    assert out.returncode == 1 and says.format(**values) in out.stderr, out.stderr


def test_cluster_nodes_that_are_not_a_cluster_are_a_503_not_a_hang(redis, start_responder):
    responder = start_responder({"REDIS_HOST": "", "REDIS_CLUSTER_NODES": f"127.0.0.1:{redis.port}"})
    for path in ("/health", "/v1/counters/x"):
        reply = responder.request("GET", path)
        assert reply.status == 503 and reply.headers.get("retry-after") == "1", (path, reply.body)
    # The operator is told why, once per worker every 10 s, not on every request.
    lines = [line for line in responder.log_lines() if line.get("message") == "redis cluster map unavailable"]
    assert lines and "cluster support disabled" in lines[0]["redis.error"], responder.log()[-2000:]
    assert len(lines) <= 4, "at most one line per worker"
