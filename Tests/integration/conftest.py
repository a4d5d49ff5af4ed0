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
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("COUNTER_FCGI_BIN", ROOT / ".build" / "debug" / "counter-fcgi"))
CGI_FCGI = shutil.which("cgi-fcgi") or "/usr/bin/cgi-fcgi"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port():
    with socket.socket() as s:
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
        self.dir = tmp / "redis"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
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

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_lines(self):
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def terminate(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def tmp(tmp_path_factory):
    # Short paths: a unix socket path must fit in 107 bytes.
    path = Path(subprocess.check_output(["mktemp", "-d", "/tmp/cf-XXXXXX"], text=True).strip())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis(tmp):
    server = Redis(tmp).start()
    yield server
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
