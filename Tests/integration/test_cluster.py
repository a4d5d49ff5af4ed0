"""Redis Cluster on loopback (scripts/redis-cluster.sh: three primaries with two replicas each, real
redis-servers formed by redis-cli --cluster create): the slot counter-fcgi computes for a key is the
server's own, for thousands of names, and the topology script forms, reshards, grows and shrinks
the cluster as it says."""
import os
import random
import socket
import string
import subprocess
from pathlib import Path

import pytest

from conftest import BINARY, ROOT

SCRIPT = ROOT / "scripts" / "redis-cluster.sh"
NAME_ALPHABET = string.ascii_letters + string.digits + "._-:"


def free_cluster_base(count, low=12000, high=22000):
    """A base port with `count` consecutive free ports, and the cluster bus's ports (+10000) free too."""
    rng = random.Random(os.getpid())
    for _ in range(500):
        base = rng.randrange(low, high - count)
        sockets = []
        try:
            for p in [*range(base, base + count), *range(base + 10000, base + 10000 + count)]:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free port block for a cluster")


class Cluster:
    def __init__(self, tmp):
        self.port = free_cluster_base(12)
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


def random_names(count, seed=7):
    rng = random.Random(seed)
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


def test_the_script_reshards_grows_and_shrinks_the_cluster(cluster):
    assert sorted(cluster.primaries()) == [cluster.port, cluster.port + 1, cluster.port + 2]
    # A key written before a reshard is where the map says after it.
    cluster.cli(0, "-c", "SET", "{c:moving}", "41")
    cluster.run("add-node", "9")
    assert cluster.port + 9 in {int(l.split()[1].split("@")[0].rsplit(":", 1)[1]) for l in cluster.cli(0, "CLUSTER", "NODES").splitlines()}
    cluster.run("rebalance")
    assert len(cluster.primaries()) == 4, "the new primary serves slots after a rebalance"
    assert cluster.cli(0, "-c", "INCR", "{c:moving}").strip() == "42"
    cluster.run("remove-node", "9")
    assert sorted(cluster.primaries()) == [cluster.port, cluster.port + 1, cluster.port + 2]
    assert "[OK] All 16384 slots covered." in cluster.run("check").stdout
    assert cluster.cli(0, "-c", "GET", "{c:moving}").strip() == "42"
    # The app's user may read the slot map and nothing of the operators'.
    password = (Path(cluster.env["REDIS_CLUSTER_DIR"]) / "app-password").read_text()
    env = {**os.environ, "REDISCLI_AUTH": password}
    as_app = lambda *a: subprocess.run(["redis-cli", "--no-auth-warning", "--user", "counter", "-p", str(cluster.port), *a],
                                       env=env, capture_output=True, text=True, timeout=30).stdout
    assert "127.0.0.1" in as_app("CLUSTER", "SLOTS")
    assert "NOPERM" in as_app("CLUSTER", "RESET") and "NOPERM" in as_app("FLUSHALL")
