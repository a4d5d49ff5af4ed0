"""Redis Cluster on loopback (scripts/redis-cluster.sh: three primaries with two replicas each, real
redis-servers formed by redis-cli --cluster create): the slot counter-fcgi computes for a key is the
server's own, for thousands of names, and the topology script forms, reshards, grows and shrinks
the cluster as it says."""
import os
import random
import string
import subprocess
from pathlib import Path

import pytest

from conftest import BINARY, ROOT
from test_sentinel import free_block

SCRIPT = ROOT / "scripts" / "redis-cluster.sh"
NAME_ALPHABET = string.ascii_letters + string.digits + "._-:"


class Cluster:
    def __init__(self, tmp):
        self.port = free_block(12, low=12000, shifted=10000)  # each node's bus port is its port + 10000
        self.env = {**os.environ, "REDIS_CLUSTER_DIR": str(tmp / "redis-cluster"), "REDIS_CLUSTER_PORT": str(self.port)}

    def run(self, *args, check=True, timeout=120):
        out = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert not check or out.returncode == 0, out.stdout + out.stderr
        return out

    def cli(self, node, *args, stdin=None):
        env = {**os.environ, "REDISCLI_AUTH": (Path(self.env["REDIS_CLUSTER_DIR"]) / "admin-password").read_text()}
        return subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(self.port + node), *map(str, args)], env=env,
                              input=stdin, capture_output=True, text=True, timeout=60).stdout

    def primaries(self):
        """{port: [slot ranges]} of the primaries that serve slots, as node 0 sees them."""
        found = {}
        for line in self.cli(0, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" in fields[2] and len(fields) > 8:
                found[int(fields[1].split("@")[0].rsplit(":", 1)[1])] = fields[8:]
        return found


@pytest.fixture
def cluster(tmp):
    made = Cluster(tmp)
    made.run("start")
    yield made
    made.run("stop", check=False)


def random_names(count):
    rng = random.Random(7)
    return ["".join(rng.choice(NAME_ALPHABET) for _ in range(rng.randint(1, 40))).replace("..", "._") or "x"
            for _ in range(count)]


def test_our_slots_are_the_servers(cluster):
    names = [n for n in random_names(3000) if n not in (".", "..")]
    ours = subprocess.run([str(BINARY), "keyslot"], input="\n".join(names) + "\n", capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0, ours.stderr
    lines = [line.split(" ", 1) for line in ours.stdout.splitlines()]
    assert [key for _, key in lines] == ["{c:%s}" % n for n in names]
    # The server's own answer, for the same keys, in one pipelined redis-cli session.
    theirs = cluster.cli(0, stdin="".join(f"CLUSTER KEYSLOT {key}\n" for _, key in lines)).split()
    assert [int(slot) for slot, _ in lines] == [int(s) for s in theirs]
    assert len({int(slot) for slot, _ in lines}) > 2500, "the names spread over the slots"
    # Raw keys too: the default counter and its records share one slot.
    raw = subprocess.run([str(BINARY), "keyslot", "--key", "api_counter", "{api_counter}:idempotency:ci:k"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    assert raw[0] == raw[2] == cluster.cli(0, "CLUSTER", "KEYSLOT", "api_counter").strip()


def test_keyslot_refuses_what_is_not_a_name():
    out = subprocess.run([str(BINARY), "keyslot", "ok", "not ok"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "'not ok' is not a counter name" in out.stderr


def test_the_apps_user_reads_the_slot_map_and_nothing_more(cluster):
    assert sorted(cluster.primaries()) == [cluster.port, cluster.port + 1, cluster.port + 2]
    assert "[OK] All 16384 slots covered." in cluster.run("check").stdout
    password = (Path(cluster.env["REDIS_CLUSTER_DIR"]) / "app-password").read_text()
    env = {**os.environ, "REDISCLI_AUTH": password}
    as_app = lambda *a: subprocess.run(["redis-cli", "--no-auth-warning", "--user", "counter", "-p", str(cluster.port), *a],
                                       env=env, capture_output=True, text=True, timeout=30).stdout
    assert "127.0.0.1" in as_app("CLUSTER", "SLOTS") and as_app("ASKING").strip() == "OK"
    for refused in (["CLUSTER", "RESET"], ["CLUSTER", "SETSLOT", "1", "STABLE"], ["FLUSHALL"], ["KEYS", "*"], ["GET", "other"]):
        assert "NOPERM" in as_app(*refused), refused


# --- counter-fcgi in cluster mode ------------------------------------------------------------------

import http.client
import json
import threading
import time

from conftest import KEY_ADMIN, KEY_READ, KEY_WRITE, LoadThreads, wait_for
from test_metrics import sample, scrape


def cluster_stack(start_stack, cluster, **responder_env):
    settings = {}
    for line in cluster.run("env").stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        settings[name] = value
    # REDIS_HOST empty: unset (the stack sets it for the single-server mode by default).
    env = {**settings, "REDIS_HOST": "", "REDIS_TIMEOUT_MS": "1000", "REDIS_CONNECT_TIMEOUT_MS": "300", **responder_env}
    return start_stack(responder_env=env, nginx_env={"FASTCGI_TIMEOUT": "5s"})


def slots_of(names):
    out = subprocess.run([str(BINARY), "keyslot", *names], capture_output=True, text=True, timeout=30)
    return {name: int(line.split()[0]) for name, line in zip(names, out.stdout.splitlines())}


class NamedLoad(LoadThreads):
    """Threads incrementing named counters through nginx (each thread cycling over `names`),
    optionally each increment with its own Idempotency-Key retried until answered. Bounded."""

    def __init__(self, port, names, clients=6, limit=3000, idempotent=False):
        self.port, self.names, self.limit, self.idempotent = port, names, limit, idempotent
        self.results = []  # (name, status, value)
        self.lock = threading.Lock()
        super().__init__(clients, self.client)

    def post(self, conn, name, key):
        headers = {"X-API-Key": KEY_WRITE, "Host": "localhost"}
        if key:
            headers["Idempotency-Key"] = key
        conn.request("POST", f"/v1/counters/{name}/increment", headers=headers)
        reply = conn.getresponse()
        body = reply.read()
        return reply.status, (json.loads(body)["value"] if reply.status == 200 else None)

    def client(self, index):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for n in range(self.limit):
            if self.stop.is_set():
                break
            name = self.names[(index + n) % len(self.names)]
            key = f"t{index}-{n}" if self.idempotent else None
            for _ in range(60 if self.idempotent else 1):
                try:
                    status, value = self.post(conn, name, key)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    status, value = None, None
                with self.lock:
                    self.results.append((name, status, value))
                if status == 200 or not self.idempotent:
                    break
                time.sleep(0.05)
        conn.close()

    def check(self, stack):
        """Per counter: no value handed out twice, every acknowledged increment in the final value,
        and for plain increments only those answered 503 (outcome unknown) may have counted unseen.
        With retried idempotent increments the final value is exactly the number acknowledged."""
        statuses = {s for _, s, _ in self.results}
        assert statuses <= {200, 503}, f"a cluster change is a 503 at worst: {statuses}"
        total = 0
        for name in self.names:
            values = [v for n, s, v in self.results if n == name and s == 200]
            failed = sum(1 for n, s, _ in self.results if n == name and s != 200)
            # A worker whose slot map predates the change may answer one 503 (Retry-After: 1)
            # before it reads the map again: read as a client that honours it does.
            replies = []
            wait_for(lambda: replies.append(stack.curl("GET", f"/v1/counters/{name}", KEY_READ)) or replies[-1].status == 200,
                     timeout=5, interval=0.2, what=f"a read of {name}")
            assert {r.status for r in replies} <= {200, 503}, replies
            final = replies[-1].json()["value"]
            assert len(values) == len(set(values)), f"{name}: a value handed out twice"
            assert max(values, default=0) <= final and len(values) <= final, f"{name}: an acknowledged increment lost"
            if self.idempotent:
                assert final == len(values), f"{name}: {final} counted for {len(values)} acknowledged keys"
            else:
                assert final - len(values) <= failed, name
            total += len(values)
        refused = sum(1 for _, s, _ in self.results if s != 200)
        return total, refused


def test_counters_spread_over_every_primary_and_read_back(start_stack, cluster):
    stack = cluster_stack(start_stack, cluster)
    names = [f"spread:{i}" for i in range(1000)]
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    for i, name in enumerate(names):
        conn.request("POST", f"/v1/counters/{name}/increment?by={i + 1}", headers={"X-API-Key": KEY_WRITE, "Host": "localhost"})
        reply = conn.getresponse()
        assert reply.status == 200 and json.loads(reply.read())["value"] == i + 1
    conn.close()
    # Every primary holds some, where its slots say.
    sizes = {port: int(cluster.cli(port - cluster.port, "DBSIZE").strip()) for port in cluster.primaries()}
    assert len(sizes) == 3 and all(size > 250 for size in sizes.values()), sizes
    for name in names[:50]:
        assert stack.curl("GET", f"/v1/counters/{name}", KEY_READ).json()["value"] == int(name.split(":")[1]) + 1
    # The listing walks every primary, page by page, each counter once.
    seen, cursor, pages = {}, "", 0
    while True:
        page = stack.curl("GET", "/v1/counters?prefix=spread:&limit=100" + (f"&cursor={cursor}" if cursor else ""), KEY_READ).json()
        pages += 1
        for counter in page["counters"]:
            assert counter["name"] not in seen
            seen[counter["name"]] = counter["value"]
        cursor = page["next"]
        if not cursor or pages > 40:
            break
    assert seen == {name: i + 1 for i, name in enumerate(names)}
    # The default counter, exactly once with a key, and every other named route on the cluster.
    assert stack.curl("POST", "/write", KEY_WRITE, headers=["Idempotency-Key: once"]).json()["value"] == 1
    assert stack.curl("POST", "/write", KEY_WRITE, headers=["Idempotency-Key: once"]).headers["idempotent-replayed"] == "true"
    assert stack.curl("PUT", "/v1/counters/spread:0", KEY_ADMIN, headers=["Content-Type: application/json"], data=b'{"value": 7}').status == 200
    assert stack.curl("DELETE", "/v1/counters/spread:1", KEY_ADMIN).status == 204
    assert stack.curl("GET", "/v1/counters/spread:0/badge.svg", KEY_READ).status == 200
    assert stack.curl("GET", "/health").json()["status"] == "healthy"
    _, metrics = scrape(stack)
    assert sample(metrics, "counter_redis_cluster_map_loads_total") >= 1


def test_resharding_under_load_loses_nothing(start_stack, cluster):
    stack = cluster_stack(start_stack, cluster)
    # Counters whose slots are among the first node 0 serves: the reshard moves those first.
    candidates = [f"moving:{i}" for i in range(400)]
    slots = slots_of(candidates)
    names = [n for n in candidates if slots[n] < 1500][:12]
    assert len(names) == 12
    plain, exact = names[:6], names[6:]
    with NamedLoad(stack.port, plain) as load_plain, NamedLoad(stack.port, exact, idempotent=True) as load_exact:
        time.sleep(1.0)
        cluster.run("reshard", "0", "1", "1500")
        time.sleep(1.0)
    assert all(cluster.primaries()[cluster.port + 1])
    acknowledged_plain, refused_plain = load_plain.check(stack)
    acknowledged_exact, refused_exact = load_exact.check(stack)
    assert acknowledged_plain > 100 and acknowledged_exact > 100
    _, metrics = scrape(stack)
    moved = sample(metrics, "counter_redis_cluster_redirects_total", kind="moved") or 0
    asked = sample(metrics, "counter_redis_cluster_redirects_total", kind="ask") or 0
    assert moved > 0, "the move was followed by MOVED"
    total = len(load_plain.results) + len(load_exact.results)
    print(f"reshard: {acknowledged_plain} plain and {acknowledged_exact} idempotent increments acknowledged, "
          f"{refused_plain + refused_exact} of {total} answers 503 ({100 * (refused_plain + refused_exact) / total:.1f}%), "
          f"{moved:.0f} MOVED and {asked:.0f} ASK followed")


def test_a_primary_killed_under_load_loses_no_acknowledged_write(start_stack, cluster):
    stack = cluster_stack(start_stack, cluster, REDIS_WAIT_REPLICAS="1")
    candidates = [f"shard:{i}" for i in range(300)]
    slots = slots_of(candidates)
    # Node 0 serves slots 0-5460: four counters on it, four on the other shards.
    victims = [n for n in candidates if slots[n] <= 5460][:4]
    others = [n for n in candidates if slots[n] > 5460][:4]
    timeline = []  # (monotonic, name, status)
    lock = threading.Lock()

    class Timed(NamedLoad):
        def post(self, conn, name, key):
            status, value = super().post(conn, name, key)
            with lock:
                timeline.append((time.monotonic(), name, status))
            return status, value

    with Timed(stack.port, victims) as on_victim, Timed(stack.port, others) as elsewhere:
        time.sleep(1.0)
        killed = time.monotonic()
        cluster.run("kill-node", "0")
        wait_for(lambda: cluster.port not in cluster.primaries() or all(
            "fail" in l.split()[2] for l in cluster.cli(1, "CLUSTER", "NODES").splitlines() if f":{cluster.port}@" in l),
            timeout=20, what="node 0 to be failed over")
        wait_for(lambda: any(t > time.monotonic() - 0.5 and n in victims and s == 200 for t, n, s in list(timeline)),
                 timeout=20, what="writes on the killed shard to resume")
        resumed = time.monotonic()
        time.sleep(1.0)
    on_victim.check(stack)
    elsewhere.check(stack)
    # The other shards never stopped: no refusal there, and no gap longer than a second.
    assert {s for _, n, s in timeline if n in others} == {200}
    other_times = sorted(t for t, n, _ in timeline if n in others and t > killed)
    assert max(b - a for a, b in zip(other_times, other_times[1:])) < 1.0
    # The killed shard came back within the cluster's failover time (node timeout 2 s) plus a second or so.
    print(f"primary killed: writes to its shard resumed after {resumed - killed:.2f} s; "
          f"{sum(1 for _, n, s in timeline if n in victims and s != 200)} refused meanwhile")
    assert resumed - killed < 2.0 + 3.0 + 1.0


def test_a_node_added_given_live_counters_then_removed_while_serving(start_stack, cluster):
    # The script's add-node, reshard and remove-node (which moves the node's slots away first),
    # with counters in the moved slots under plain and idempotent load, and no restart.
    stack = cluster_stack(start_stack, cluster)
    candidates = [f"grow:{i}" for i in range(600)]
    slots = slots_of(candidates)
    names = [n for n in candidates if slots[n] < 300][:8]
    assert len(names) == 8
    with NamedLoad(stack.port, names[:4]) as plain, NamedLoad(stack.port, names[4:], idempotent=True) as exact:
        time.sleep(0.5)
        cluster.run("add-node", "9")
        cluster.run("reshard", "0", "9", "300")
        assert cluster.port + 9 in cluster.primaries(), "the new node serves slots"
        time.sleep(0.5)
        held = int(cluster.cli(9, "DBSIZE").strip())
        cluster.run("remove-node", "9")
        time.sleep(0.5)
    assert held >= len(names), "the live counters were on the new node"
    plain.check(stack)
    exact.check(stack)
    assert sorted(cluster.primaries()) == [cluster.port, cluster.port + 1, cluster.port + 2]
    assert "PONG" not in cluster.cli(9, "PING"), "the removed node's process is gone"
    assert stack.curl("POST", f"/v1/counters/{names[0]}/increment", KEY_WRITE).status == 200


def test_a_slot_in_migration_is_followed_by_ask_scripts_included(start_stack, cluster):
    # A slot halfway through a move, made by hand: a counter and its idempotency record already
    # MIGRATEd to the target, the slot still the source's. The source answers ASK, and commands go
    # to the target after ASKING; the target has never run the write-once script, so a retried
    # write meets NOSCRIPT there: loaded on that node, then run (it was a 500 once, in a reshard).
    stack = cluster_stack(start_stack, cluster)
    name = next(n for n, slot in slots_of([f"ask:{i}" for i in range(200)]).items() if slot < 5461)
    slot = slots_of([name])[name]
    first = stack.curl("POST", f"/v1/counters/{name}/increment?by=5", KEY_WRITE, headers=["Idempotency-Key: ask-1"])
    assert first.status == 200 and first.json()["value"] == 5
    keys = ["{c:%s}" % name, "{c:%s}:idempotency:writer:ask-1" % name]
    source_id, target_id = cluster.cli(0, "CLUSTER", "MYID").strip(), cluster.cli(1, "CLUSTER", "MYID").strip()
    assert cluster.cli(1, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id).strip() == "OK"
    assert cluster.cli(0, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id).strip() == "OK"
    password = (Path(cluster.env["REDIS_CLUSTER_DIR"]) / "admin-password").read_text()
    assert cluster.cli(0, "MIGRATE", "127.0.0.1", cluster.port + 1, "", 0, 5000, "AUTH", password, "KEYS", *keys).strip() == "OK"
    try:
        again = stack.curl("POST", f"/v1/counters/{name}/increment?by=5", KEY_WRITE, headers=["Idempotency-Key: ask-1"])
        assert again.status == 200, (again, stack.responder.log()[-2000:])
        assert again.headers["idempotent-replayed"] == "true" and again.json()["value"] == 5
        assert stack.curl("POST", f"/v1/counters/{name}/increment", KEY_WRITE).json()["value"] == 6
        assert stack.curl("GET", f"/v1/counters/{name}", KEY_READ).json()["value"] == 6
        # A new key: its record is not on the target yet, so Redis refuses the two-key script
        # (TRYAGAIN) until the move ends: a 503 with Retry-After, never a 500.
        split = stack.curl("POST", f"/v1/counters/{name}/increment", KEY_WRITE, headers=["Idempotency-Key: ask-2"])
        assert split.status == 503 and split.headers["retry-after"] == "1"
        _, metrics = scrape(stack)
        assert sample(metrics, "counter_redis_cluster_redirects_total", kind="ask") >= 3
    finally:
        for node in (1, 0):
            cluster.cli(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
    # The move finished: the write refused mid-move is done, once.
    done = stack.curl("POST", f"/v1/counters/{name}/increment", KEY_WRITE, headers=["Idempotency-Key: ask-2"])
    assert done.status == 200 and done.json()["value"] == 7
