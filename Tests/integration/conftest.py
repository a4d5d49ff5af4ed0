"""Fixtures that start the real parts: redis-server, the built counter-fcgi, and cgi-fcgi.

Everything listens on 127.0.0.1 or on unix sockets inside a per-test temp dir, and every process
started here is stopped by its PID when the test ends.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("COUNTER_FCGI_BIN", ROOT / ".build" / "debug" / "counter-fcgi"))
# scripts/coverage.sh: responders are stopped with SIGTERM (not KILL) so each writes its profile.
STOP_GRACEFULLY = os.environ.get("COUNTER_FCGI_STOP") == "term"
CGI_FCGI = shutil.which("cgi-fcgi") or "/usr/bin/cgi-fcgi"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def checkov(framework, *targets):
    """checkov (from .tools/venv, never downloading) on `targets` (its -f/-d arguments):
    (the failed checks as (id, resource), how many passed)."""
    out = subprocess.run([str(ROOT / ".tools" / "venv" / "bin" / "checkov"), "--skip-download", "--quiet", "--compact",
                          "--framework", framework, *map(str, targets), "-o", "json"],
                         capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]]
    return failed, sum(r["summary"]["passed"] for r in reports)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(type=kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Redis:
    """A redis-server on a random loopback port, restartable on the same port and data dir."""

    def __init__(self, tmp: Path, extra=()):
        self.port = free_port()
        self.dir = tmp / f"redis-{self.port}"  # its own AOF: several servers may share a temp dir
        self.dir.mkdir(exist_ok=True)
        self.extra = list(extra)
        self.password = None
        self.proc = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes", "--logfile", str(self.dir / "redis.log")] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.ping(), what="redis-server to answer")
        return self

    def ping(self):
        out = self.cli("PING", check=False)
        return out.returncode == 0 and out.stdout.strip() == "PONG"

    def cli(self, *args, check=True, db=0):
        cmd = [REDIS_CLI, "-p", str(self.port), "-n", str(db)]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        out = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=10, env=env)
        if check:
            assert out.returncode == 0, out.stderr
        return out

    def get(self, key="api_counter", db=0):
        return self.cli("GET", key, db=db).stdout.strip()

    def kill(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(timeout=10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill()


class Reply:
    def __init__(self, raw: bytes):
        head, _, body = raw.partition(b"\r\n\r\n")
        self.headers = {}
        self.status = 200  # CGI: no Status header means 200
        for line in head.decode().split("\r\n"):
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if "status" in self.headers:
            self.status = int(self.headers["status"].split()[0])
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Reply {self.status} {self.headers} {self.body!r}>"


class Responder:
    """The built counter-fcgi, started with the given settings, spoken to with cgi-fcgi."""

    def __init__(self, tmp: Path, env: dict, args=()):
        self.tmp = tmp
        self.socket = tmp / "fcgi.sock"
        self.log_path = tmp / f"counter-fcgi-{time.monotonic_ns()}.log"
        self.env = {"FCGI_LISTEN": f"unix:{self.socket}", "FCGI_THREADS": "4",
                    "REDIS_TIMEOUT_MS": "500", "REDIS_CONNECT_TIMEOUT_MS": "300"}
        self.env.update(env)
        self.args = list(args)
        self.proc = None
        if self.env["FCGI_LISTEN"].startswith("unix:"):
            self.socket = Path(self.env["FCGI_LISTEN"][5:])
        self.connect = str(self.socket)
        if self.env["FCGI_LISTEN"].startswith("tcp:"):
            self.connect = self.env["FCGI_LISTEN"][4:]

    def start(self, wait=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(BINARY)] + self.args, env=self.env, stdout=self._log, stderr=self._log)
        if wait:
            wait_for(self.ready, what="counter-fcgi to accept")
        return self

    def ready(self):
        assert self.proc.poll() is None, f"counter-fcgi exited early:\n{self.log()}"
        try:
            return self.request("GET", "/livez", timeout=2).status == 200
        except Exception:
            return False

    def request(self, method, path, params=None, body=b"", timeout=10):
        env = {"REQUEST_METHOD": method, "DOCUMENT_URI": path, "REQUEST_URI": path, "SCRIPT_NAME": path}
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        if params:
            env.update(params)
            env = {k: v for k, v in env.items() if v is not None}
        out = subprocess.run([CGI_FCGI, "-bind", "-connect", self.connect], env=env, input=body,
                             capture_output=True, timeout=timeout)
        assert out.returncode == 0, f"cgi-fcgi failed: {out.stderr!r}"
        return Reply(out.stdout)

    def busy_workers(self):
        """counter_workers_busy from the responder's own /metrics (a free worker answers it, and
        counts itself): how many workers hold a request, as a condition to wait on."""
        for line in self.request("GET", "/metrics").body.decode().splitlines():
            if line.startswith("counter_workers_busy "):
                return int(float(line.split()[1])) - 1
        raise AssertionError("no counter_workers_busy in the exposition")

    def wait_for_log(self, message, timeout=10.0):
        wait_for(lambda: any(l.get("message") == message for l in self.log_lines()), timeout=timeout,
                 what=f"log line {message!r}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_lines(self):
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def terminate(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if STOP_GRACEFULLY:
                # An instrumented build writes its coverage profile only when it exits by itself.
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


# Started as root, nginx's workers run as nobody:nogroup (nginx/render.sh). As in `make run`, the
# temp dir is a setgid folder of that group, so the FastCGI socket made in it (0660) is theirs to use.
WORKER_GROUP = "nogroup"


def share_with_nginx_workers(path: Path):
    if os.geteuid() == 0:
        shutil.chown(path, group=WORKER_GROUP)
        path.chmod(0o2750)


@pytest.fixture
def tmp(tmp_path_factory):
    # Short paths: a unix socket path must fit in 107 bytes.
    path = Path(subprocess.check_output(["mktemp", "-d", "/tmp/cf-XXXXXX"], text=True).strip())
    share_with_nginx_workers(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis(tmp):
    server = Redis(tmp).start()
    yield server
    server.stop()


@pytest.fixture
def start_redis(tmp):
    """Starts extra redis-servers (with a password, a unix socket...), stopped after the test."""
    made = []

    def start(password=None, extra=()):
        server = Redis(tmp, extra=list(extra) + (["--requirepass", password] if password else []))
        server.password = password
        made.append(server)
        return server.start()

    yield start
    for server in made:
        server.stop()


@pytest.fixture
def start_responder(tmp):
    started = []

    def start(env=None, args=(), wait=True):
        responder = Responder(tmp, env or {}, args).start(wait=wait)
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()


@pytest.fixture
def responder(redis, start_responder):
    return start_responder({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port)})


RENDER = ROOT / "nginx" / "render.sh"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl") or "/usr/bin/curl"

# Test keys: distinctive strings so a grep of logs can prove they never appear.
KEY_ADMIN = "tk-admin-Q7x9v2LmP4sR8wYz"
KEY_WRITE = "tk-write-H3n6B1cD5fG8jK0m"
KEY_READ = "tk-read-T2u5V8x1Z4a7C0e3"


class HTTPReply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<HTTP {self.status} {self.headers} {self.body!r}>"


class Nginx:
    """nginx rendered from nginx/ by nginx/render.sh into the temp dir, on a random loopback port."""

    def __init__(self, tmp: Path, socket_path: Path, env=None):
        self.tmp = tmp
        self.conf_dir = tmp / "nginx"
        self.port = free_port()
        self.metrics_port = free_port()
        self.keys_file = tmp / "keys.txt"
        self.keys_file.write_text(f"# name-less and named keys\n{KEY_WRITE} write writer\n{KEY_READ} read\n")
        self.access_log = tmp / "access.log"
        self.error_log = tmp / "nginx-stderr.log"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(self.port),
                    "METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
                    "FCGI_LISTEN": f"unix:{socket_path}", "API_KEY": KEY_ADMIN, "API_KEY_NAME": "admin",
                    "API_KEYS_FILE": str(self.keys_file), "ACCESS_LOG": str(self.access_log),
                    # Limits far above any test's load, bursts too: requests that queue behind a
                    # stall (a failover, a reshard) arrive at once when it ends.
                    "RATE_LIMIT_PER_KEY": "10000r/s", "RATE_LIMIT_PER_KEY_BURST": "10000",
                    "RATE_LIMIT_PER_ADDRESS": "10000r/s", "RATE_LIMIT_PER_ADDRESS_BURST": "10000",
                    "RATE_LIMIT_BAD_KEY": "10000r/s", "FASTCGI_TIMEOUT": "3s"}
        self.env.update(env or {})
        self.proc = None

    def render(self, *extra):
        out = subprocess.run(["sh", str(RENDER), str(self.conf_dir), *extra], env=self.env,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out

    def check(self):
        return subprocess.run([NGINX, "-t", "-c", str(self.conf_dir / "nginx.conf"), "-p", str(self.conf_dir)],
                              capture_output=True, text=True, timeout=30)

    def start(self):
        self.render()
        assert self.check().returncode == 0
        self._err = open(self.error_log, "ab")
        self.proc = subprocess.Popen([NGINX, "-c", str(self.conf_dir / "nginx.conf"), "-p", str(self.conf_dir),
                                      "-g", "daemon off;"], stdout=self._err, stderr=self._err)
        wait_for(lambda: self.curl("GET", "/livez").status in (200, 502), what="nginx to answer")
        return self

    def reload(self):
        old = set(self.worker_pids())
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: set(self.worker_pids()).isdisjoint(old) and self.worker_pids(), what="new nginx workers")

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def curl(self, method, path, key=None, headers=(), data=None, host=None, timeout=15):
        verb = ["-I", "-o", "/dev/null"] if method == "HEAD" else ["-X", method, "-o", "-"]
        args = [CURL, "-sS", *verb, "-D", str(self.tmp / "headers.txt"),
                "-w", "\n%{http_code}", "--max-time", str(timeout), f"http://127.0.0.1:{self.port}{path}"]
        if key is not None:
            args += ["-H", f"X-API-Key: {key}"]
        for header in headers:
            args += ["-H", header]
        if host:
            args += ["-H", f"Host: {host}"]
        if data is not None:
            args += ["--data-binary", "@-"]
        out = subprocess.run(args, input=data, capture_output=True, timeout=timeout + 5)
        if out.returncode != 0:
            return HTTPReply(None, {}, out.stderr)
        body, _, code = out.stdout.rpartition(b"\n")
        lines = (self.tmp / "headers.txt").read_text(errors="replace").splitlines()
        headers_out = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers_out[name.strip().lower()] = value.strip()
        if method == "HEAD":
            body = b""
        return HTTPReply(int(code), headers_out, body)

    def parallel(self, method, path, key, count, parallel=16, headers=()):
        """`count` requests with curl --parallel; returns [(status, body)] in completion order."""
        out_dir = self.tmp / f"parallel-{time.monotonic_ns()}"
        out_dir.mkdir()
        sep = "&" if "?" in path else "?"
        url = f"http://127.0.0.1:{self.port}{path}{sep}n=[1-{count}]"
        args = [CURL, "-sS", "--parallel", "--parallel-max", str(parallel), "-X", method,
                "-H", f"X-API-Key: {key}", "-o", str(out_dir / "r#1.json"),
                "-w", "%{http_code} %{filename_effective} %header{idempotent-replayed}\n", url]
        for header in headers:
            args[1:1] = ["-H", header]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        results = []
        self.replayed_flags = []
        for line in out.stdout.splitlines():
            code, name, *flag = line.split(" ")
            results.append((int(code), Path(name).read_text()))
            self.replayed_flags.append(flag[0] if flag else "")
        return results

    def access_lines(self):
        if not self.access_log.exists():
            return []
        return [json.loads(l) for l in self.access_log.read_text().splitlines() if l.strip()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def start_stack(tmp, redis, start_responder):
    """Redis + counter-fcgi + nginx, the way `make run` wires them (settings overridable)."""
    made = []

    def start(nginx_env=None, responder_env=None):
        # nginx reports the requests it answers itself to counter-fcgi (counter_edge_requests_total).
        edge = {"EDGE_LOG_ADDRESS": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"}
        env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), **edge}
        env.update(responder_env or {})
        responder = start_responder(env)
        front = Nginx(tmp, responder.socket, {**edge, **(nginx_env or {})}).start()
        made.append(front)
        front.responder = responder
        front.redis = redis
        return front

    yield start
    for front in made:
        front.stop()


@pytest.fixture
def stack(start_stack):
    return start_stack()


class LoadThreads:
    """Client threads that run for the length of a `with` block: a subclass starts with
    `super().__init__(count, target)` (each thread calls `target(index)`) and its clients stop when
    `self.stop` is set."""

    def __init__(self, count, target):
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=target, args=(c,), daemon=True) for c in range(count)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
