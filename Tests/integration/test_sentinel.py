"""Redis high availability with real redis-servers and real Sentinels on loopback (started by
scripts/redis-ha.sh, the script users run by hand): counter-fcgi follows failovers on its own, and
with REDIS_WAIT_REPLICAS=1 no acknowledged increment is lost when the primary dies. Load loops are
bounded in count and time and talk to 127.0.0.1 only."""
import http.client
import json
import os
import socket
import threading
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE, ROOT, wait_for
from test_metrics import sample, scrape
from test_nginx import assert_problem
from test_reliability import Load

SCRIPT = ROOT / "scripts" / "redis-ha.sh"


def ephemeral_low():
    """The first port the kernel hands out to outgoing connections (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_block(count, low=10000, high=None, shifted=0):
    """A base port with `count` consecutive free loopback ports from it, below the ephemeral range:
    there, a port free when checked can be taken by any outgoing connection before the server
    binds it (seen: a data node that could not start). With `shifted`, the same block that many
    ports higher must be free too (a Redis Cluster node's bus port is its port + 10000)."""
    high = (high or ephemeral_low()) - shifted
    if high - low < 1000:  # an unusual ephemeral range: take the chance above it instead
        low, high = 20000, 60000 - shifted
    start = (os.getpid() * 7919 + time.monotonic_ns()) % (high - low)
    for k in range(2000):
        base = low + (start + k * 13) % (high - low - count)
        sockets = []
        try:
            for port in [*range(base, base + count), *(range(base + shifted, base + shifted + count) if shifted else [])]:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free port block")


class HA:
    """A primary, two replicas and three Sentinels, through scripts/redis-ha.sh."""

    def __init__(self, tmp, max_lag=10):
        base = free_block(6)  # three data nodes, then three Sentinels
        self.env = {**os.environ, "REDIS_HA_DIR": str(tmp / "redis-ha"), "REDIS_HA_PORT": str(base),
                    "REDIS_HA_SENTINEL_PORT": str(base + 3), "REDIS_HA_DOWN_AFTER_MS": "1000",
                    "REDIS_HA_MAX_LAG": str(max_lag)}
        self.port = int(self.env["REDIS_HA_PORT"])

    def run(self, *args, check=True):
        out = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert not check or out.returncode == 0, out.stderr
        return out

    def settings(self):
        values = {}
        for line in self.run("env").stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value
        return values

    def cli(self, node, *args):
        env = {**os.environ, "REDISCLI_AUTH": (self.dir / "admin-password").read_text()}
        out = subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(self.port + node), *map(str, args)],
                             env=env, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    @property
    def dir(self):
        return Path(self.env["REDIS_HA_DIR"])

    def primary(self):
        """(node index, port) of the primary as the Sentinels see it."""
        out = subprocess.run(["redis-cli", "--no-auth-warning", "-p", self.env["REDIS_HA_SENTINEL_PORT"],
                              "SENTINEL", "get-master-addr-by-name", "counter"],
                             env={**os.environ, "REDISCLI_AUTH": (self.dir / "sentinel-password").read_text()},
                             capture_output=True, text=True, timeout=10).stdout.split()
        port = int(out[1])
        return port - self.port, port

    def role(self, node):
        return self.cli(node, "ROLE").splitlines()[0] if self.cli(node, "PING") == "PONG" else "down"


@pytest.fixture
def ha(tmp):
    made = []

    def start(max_lag=10):
        cluster = HA(tmp, max_lag)
        made.append(cluster)
        cluster.run("start")
        return cluster

    yield start
    for cluster in made:
        cluster.run("stop", check=False)


def ha_stack(start_stack, cluster, **responder_env):
    env = {**cluster.settings(), "REDIS_TIMEOUT_MS": "1000", "REDIS_CONNECT_TIMEOUT_MS": "300", **responder_env}
    return start_stack(responder_env=env, nginx_env={"FASTCGI_TIMEOUT": "5s"})


# What the responder logs when Redis, not the worker's backoff, refuses a write.
REDIS_TROUBLE = {"write not acknowledged by enough replicas", "redis disconnected", "redis refused a command",
                 "redis connect failed"}


def redis_trouble_after(responder, monotonic_start):
    """The responder's log lines that blame Redis, written after `monotonic_start` (time.monotonic())."""
    since = time.time() - (time.monotonic() - monotonic_start)
    return [line for line in responder.log_lines() if line["message"] in REDIS_TROUBLE
            and datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp() > since]


def check_no_acknowledged_write_lost(stack, load, cluster=None):
    values = load.values()
    if cluster:
        print("nodes:", [(n, cluster.role(n), cluster.cli(n, "GET", "api_counter")) for n in range(3)])
        print("max value", max(values), "count", len(values))
    statuses = {s for _, _, s, _ in load.results}
    assert len(values) > 50, "the load ran"
    assert len(values) == len(set(values)), "no value handed out twice"
    assert statuses <= {200, 503}, f"a failover is a 503 at worst: {statuses}"
    final = stack.curl("GET", "/read", KEY_READ).json()["value"]
    assert max(values) <= final and len(values) <= final, "every acknowledged increment is in the counter"
    failed = sum(1 for _, _, s, _ in load.results if s != 200)
    assert final - len(values) <= failed, "only writes whose outcome was unknown (503) may have counted"
    return values, final


def test_primary_killed_under_load_loses_no_acknowledged_write(start_stack, ha):
    cluster = ha()
    stack = ha_stack(start_stack, cluster, REDIS_WAIT_REPLICAS="1")
    assert stack.curl("GET", "/health").status == 200
    assert sample(scrape(stack)[1], "counter_redis_primary", address=f"127.0.0.1:{cluster.port}") == 1
    with Load(stack.port, clients=8) as load:
        time.sleep(1.5)
        cluster.run("kill-primary")
        killed = time.monotonic()
        wait_for(lambda: cluster.primary()[1] != cluster.port, timeout=20, what="the Sentinels' failover")
        time.sleep(3.0)
    values, final = check_no_acknowledged_write_lost(stack, load, cluster)
    new_node, new_port = cluster.primary()
    assert int(cluster.cli(new_node, "GET", "api_counter")) == final, "the API reads the new primary"
    first_ok = min(st + d for st, d, s, _ in load.results if s == 200 and st > killed)
    outage = first_ok - killed
    print(f"sentinel failover: writes back {outage:.2f}s after the primary was killed")
    assert outage < 8, f"service back within 8 s (down-after 1 s + failover), took {outage:.2f}s"
    # Once one write succeeds, the workers still backing off try again at once (the recovery is
    # shared): before, 170 to 320 more writes were refused over about 250 ms.
    # Refusals Redis itself causes after that (a replica still resyncing: WAIT short, NOREPLICAS)
    # are right and say so in the log; without any, a refusal can only be a worker's backoff.
    refused_after = sorted(round(st - first_ok, 3) for st, _, s, _ in load.results if st > first_ok and s != 200)
    redis_trouble = redis_trouble_after(stack.responder, first_ok)
    if not redis_trouble:
        assert len(refused_after) < 8, f"{len(refused_after)} writes refused after service was back, at {refused_after}"
    slowest = max(d for _, d, _, _ in load.results)
    assert slowest < 3.5, f"no request waits past the timeouts ({slowest:.2f}s)"
    health = stack.curl("GET", "/health").json()
    assert health["status"] == "healthy" and "primary" not in health
    _, text = scrape(stack)
    # Each switch of the primary in use is counted and logged once, whatever the workers' number.
    changes = [l for l in stack.responder.log_lines() if l["message"] == "redis primary changed"]
    assert changes and changes[0]["redis.previous_primary"] == f"127.0.0.1:{cluster.port}"
    assert changes[-1]["redis.primary"] == f"127.0.0.1:{new_port}"
    assert sample(text, "counter_redis_failovers_total") == len(changes)
    assert sample(text, "counter_redis_primary", address=f"127.0.0.1:{new_port}") == 1
    assert sample(text, "counter_redis_primary", address=f"127.0.0.1:{cluster.port}") == 0


def test_planned_failover_under_load_loses_nothing(start_stack, ha):
    # SENTINEL FAILOVER alone promotes a replica while the old primary still takes writes and the
    # other replica still acknowledges them until Sentinel re-points it: with WAIT 1 those writes
    # were lost (thousands, measured). scripts/redis-ha.sh failover pauses writes on the primary
    # first, which closes that window.
    cluster = ha()
    stack = ha_stack(start_stack, cluster, REDIS_WAIT_REPLICAS="1")
    with Load(stack.port, clients=8) as load:
        time.sleep(1.0)
        switched = time.monotonic()
        cluster.run("failover")
        wait_for(lambda: cluster.primary()[1] != cluster.port, timeout=20, what="the planned failover")
        time.sleep(1.5)
    values, final = check_no_acknowledged_write_lost(stack, load, cluster)
    gap = [st for st, _, s, _ in load.results if s != 200 and st > switched]
    print(f"planned failover: {len(gap)} writes refused (503), for {max(gap, default=switched) - switched:.2f}s")
    new_node, _ = cluster.primary()
    assert int(cluster.cli(new_node, "GET", "api_counter")) == final


def test_named_counters_through_a_failover_count_each_write_once(start_stack, ha):
    # The named routes on the Sentinel topology (scripts/redis-ha.sh's ACL user): plain increments
    # under load lose no acknowledged write across a planned failover, and clients that retry each
    # increment with its own Idempotency-Key until it is answered get every one counted exactly once.
    cluster = ha()
    stack = ha_stack(start_stack, cluster, REDIS_WAIT_REPLICAS="1")
    # Every named route works with the topology's ACL user before anything fails.
    assert stack.curl("PUT", "/v1/counters/ha:seeded", KEY_ADMIN, headers=["Content-Type: application/json"],
                      data=b'{"value": 40}').status == 200
    assert stack.curl("POST", "/v1/counters/ha:seeded/increment?by=2", KEY_WRITE).json()["value"] == 42
    assert stack.curl("GET", "/v1/counters/ha:seeded/badge.svg", KEY_READ).status == 200
    assert [c["name"] for c in stack.curl("GET", "/v1/counters?prefix=ha:", KEY_READ).json()["counters"]] == ["ha:seeded"]
    assert stack.curl("DELETE", "/v1/counters/ha:seeded", KEY_ADMIN).status == 204

    acknowledged, attempts, lock, stop = [], [], threading.Lock(), threading.Event()

    def retrying_client(client):
        for n in range(2000):
            if stop.is_set():
                return
            key = f"c{client}-{n}"
            for _ in range(100):  # bounded: a failover takes seconds, each try at most 10 s
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
                    conn.request("POST", "/v1/counters/ha:exact/increment",
                                 headers={"X-API-Key": KEY_WRITE, "Host": "localhost", "Idempotency-Key": key})
                    reply = conn.getresponse()
                    body = reply.read()
                    conn.close()
                except (OSError, http.client.HTTPException):
                    reply = None
                with lock:
                    attempts.append(reply.status if reply else None)
                if reply is not None and reply.status == 200:
                    with lock:
                        acknowledged.append((key, json.loads(body)["value"]))
                    break
                time.sleep(0.05)

    threads = [threading.Thread(target=retrying_client, args=(c,), daemon=True) for c in range(4)]
    with Load(stack.port, clients=4, path="/v1/counters/ha:plain/increment") as load:
        for t in threads:
            t.start()
        time.sleep(1.0)
        cluster.run("failover")
        wait_for(lambda: cluster.primary()[1] != cluster.port, timeout=20, what="the planned failover")
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    # Plain increments: no acknowledged value lost or handed out twice.
    values = load.values()
    assert len(values) > 50 and len(values) == len(set(values))
    final = stack.curl("GET", "/v1/counters/ha:plain", KEY_READ).json()["value"]
    assert max(values) <= final and len(values) <= final
    assert final - len(values) <= sum(1 for _, _, s, _ in load.results if s != 200)
    # Retried idempotent increments: each key counted once, so the counter is exactly their number.
    keys = [k for k, _ in acknowledged]
    assert len(keys) > 20 and len(keys) == len(set(keys))
    assert stack.curl("GET", "/v1/counters/ha:exact", KEY_READ).json()["value"] == len(keys)
    assert sorted(v for _, v in acknowledged) == list(range(1, len(keys) + 1)), "every value answered once"
    print(f"named failover: {len(keys)} idempotent increments in {len(attempts)} attempts "
          f"({sum(1 for a in attempts if a != 200)} refused and retried); {len(values)} plain")
    new_node, _ = cluster.primary()
    assert cluster.cli(new_node, "GET", "{c:ha:exact}") == str(len(keys))


def test_one_sentinel_down_is_fine_all_down_is_a_clear_503_then_back(start_stack, start_responder, ha, tmp):
    cluster = ha()
    cluster.run("stop-sentinel", "0")
    stack = ha_stack(start_stack, cluster)
    assert stack.curl("POST", "/write", KEY_WRITE).json()["value"] == 1, "two Sentinels of three are enough"
    health = stack.curl("GET", "/health").json()
    assert set(health) == {"status", "redis", "timestamp"}, "the public body never names an internal address"
    for i in ("1", "2"):
        cluster.run("stop-sentinel", i)
    # A responder that starts now cannot find the primary.
    env = {**cluster.settings(), "FCGI_LISTEN": f"unix:{tmp / 'second.sock'}", "REDIS_CONNECT_TIMEOUT_MS": "200"}
    second = start_responder(env)
    reply = second.request("POST", "/write")
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    lines = [l for l in second.log_lines() if "no Sentinel named the primary" in l.get("redis.error", "")]
    assert lines and lines[0]["level"] == "warning", "a clear log line says why"
    for i in ("0", "1", "2"):
        cluster.run("start-sentinel", i)
    wait_for(lambda: second.request("POST", "/write").status == 200, timeout=10, what="service once Sentinels are back")


def test_old_primary_returns_as_a_replica_and_is_never_written(start_stack, ha):
    cluster = ha()
    stack = ha_stack(start_stack, cluster)
    assert stack.curl("POST", "/write", KEY_WRITE).status == 200
    cluster.run("kill-primary")
    wait_for(lambda: cluster.primary()[1] != cluster.port, timeout=20, what="the failover")
    wait_for(lambda: stack.curl("POST", "/write", KEY_WRITE).status == 200, timeout=10, what="writes on the new primary")
    cluster.run("start-node", "0")
    wait_for(lambda: cluster.role(0) == "slave", timeout=20, what="the old primary to rejoin as a replica")
    # Writes go on while the old primary resyncs from the new one. A write may be refused meanwhile
    # (a 503 with Retry-After: safe, never a lost write): min-replicas-to-write refuses writes while
    # the new primary has no replica in sync, which lasts as long as a full resync (diskless, it
    # waits 5 s for more replicas first). CI's loaded machine saw NOREPLICAS for over a second. So
    # each write gets what a client retrying for 8 s gets: success.
    try:
        for _ in range(20):
            wait_for(lambda: stack.curl("POST", "/write", KEY_WRITE).status == 200, timeout=8.0,
                     what="a write to succeed within 8 s while the old primary rejoins")
    except AssertionError as failure:
        errors = [(l["message"], l.get("redis"), l["redis.error"]) for l in stack.responder.log_lines() if "redis.error" in l]
        node, _ = cluster.primary()
        replication = cluster.cli(node, "INFO", "replication")
        raise AssertionError(f"{failure}; the responder's last Redis errors: {errors[-5:]}; "
                             f"the primary's replication: {replication!r}") from None
    new_node, _ = cluster.primary()
    assert new_node != 0
    wait_for(lambda: cluster.cli(0, "GET", "api_counter") == cluster.cli(new_node, "GET", "api_counter"),
             timeout=10, what="the returned node to replicate")
    clients = cluster.cli(0, "CLIENT", "LIST")
    assert "user=counter" not in clients, "counter-fcgi never connects to the old primary"


def test_primary_without_replicas_refuses_writes(start_stack, start_responder, ha, tmp):
    cluster = ha(max_lag=2)
    waiting = ha_stack(start_stack, cluster, REDIS_WAIT_REPLICAS="1")
    plain_env = {**cluster.settings(), "FCGI_LISTEN": f"unix:{tmp / 'plain.sock'}"}
    plain = start_responder(plain_env)  # the same, without WAIT
    assert waiting.curl("POST", "/write", KEY_WRITE).status == 200
    # Replicas cut off without closing their connections (frozen): the primary still counts them
    # for a while, so only WAIT can tell that no replica has a write.
    for node in ("1", "2"):
        cluster.run("pause-node", node)
    try:
        for _ in range(4):
            reply = waiting.curl("POST", "/write", KEY_WRITE)
            assert_problem(reply, 503)
            assert reply.headers["retry-after"] == "1"
        _, text = scrape(waiting)
        assert sample(text, "counter_redis_wait_shortfalls_total") >= 4
        shortfalls = [l for l in waiting.responder.log_lines() if l["message"] == "write not acknowledged by enough replicas"]
        assert shortfalls and shortfalls[0]["redis.replicas_acknowledged"] == "0"
        # Without WAIT the primary itself refuses once the replicas are silent past
        # min-replicas-max-lag (2 s here): NOREPLICAS, a 503.
        wait_for(lambda: plain.request("POST", "/write").status == 503, timeout=15, what="min-replicas-to-write")
        assert plain.request("GET", "/read").status == 200, "reads still work"
    finally:
        for node in ("1", "2"):
            cluster.run("resume-node", node)
    # Replicas gone for good: refused at once, with or without WAIT.
    for node in ("1", "2"):
        cluster.run("stop-node", node)
    assert_problem(waiting.curl("POST", "/write", KEY_WRITE), 503)
    assert plain.request("POST", "/write").status == 503


def test_discovery_over_stalled_sentinels_is_bounded(start_responder):
    # Sentinels that take the connection and never answer (a listening socket nobody accepts on:
    # the kernel completes the handshake, the command waits in its buffer). Six of them would cost
    # 6 s of command timeouts, past nginx's FASTCGI_TIMEOUT; the discovery stops at its budget
    # (connect + command timeout, 1.3 s here) and the request gets a prompt 503.
    stalled = []
    try:
        for _ in range(6):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            stalled.append(s)
        sentinels = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in stalled)
        responder = start_responder({"REDIS_SENTINELS": sentinels, "FCGI_THREADS": "1",
                                     "REDIS_CONNECT_TIMEOUT_MS": "300", "REDIS_TIMEOUT_MS": "1000"})
        started = time.monotonic()
        reply = responder.request("POST", "/write", timeout=30)
        took = time.monotonic() - started
        assert reply.status == 503 and reply.headers["retry-after"] == "1"
        assert took < 4.0, f"bounded by the discovery budget, not by six Sentinels' timeouts ({took:.1f}s)"
        reasons = [l["redis.error"] for l in responder.log_lines() if "no Sentinel named" in l.get("redis.error", "")]
        assert reasons and "not asked, the discovery took its 1300 ms" in reasons[0], reasons
    finally:
        for s in stalled:
            s.close()
