"""`coordinator processes` and `publish --wait` with a pre-fork parent in the fleet."""

from __future__ import annotations

import json
import subprocess
import time

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import Keys, SpecStore
from support.app_servers import coordinator, server_env, tool
from support.fleet import Worker, applied_everywhere
from support.waiting import wait_for


def test_processes_shows_parents_and_does_not_count_them(redis_url: str, prefix: str) -> None:
    """A pre-fork parent is listed with its role, and left out of the count."""
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.status("master"), "_process", '{"role": "parent", "children": 2}')
    client.zadd(keys.processes, {"master": time.time(), "w-1": time.time(), "w-2": time.time()})
    client.close()
    text = coordinator(redis_url, prefix, "processes")
    assert text.returncode == 0
    lines = text.stdout.strip().splitlines()
    assert lines[-1] == "2 processes online, and 1 pre-fork parent."
    assert any(line.split()[0] == "master" and "parent of 2" in line for line in lines)
    document = json.loads(coordinator(redis_url, prefix, "processes", "--json").stdout)
    assert document["count"] == 2 and document["parents"] == 1
    assert document["processes"]["master"]["role"] == "parent"
    assert document["processes"]["w-1"]["role"] == "process"


def test_wait_never_waits_for_a_parent(redis_url: str, prefix: str) -> None:
    """With only a parent online, publish --wait has nobody to wait for: exit 3 at once."""
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.status("master"), "_process", '{"role": "parent", "children": 2}')
    client.zadd(keys.processes, {"master": time.time()})
    client.close()
    result = coordinator(redis_url, prefix, "publish", "p", "-t", "a.b", "--value", "1", "--wait")
    # Not a timed-out wait (exit 3 too, but "timed out"): nobody was waited for.
    assert result.returncode == 3 and "no processes are online" in result.stderr
    assert "timed out" not in result.stderr


def test_wait_stops_waiting_for_a_process_whose_connection_closes(
    redis_server: RedisServer, prefix: str
) -> None:
    """A process whose connection closes while publish --wait runs is dropped from the wait,
    which ends with exit 0, not at its timeout."""
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_server.url)
    worker = Worker(redis_server.url, prefix)
    name = keys.connection_name("ghost")
    ghost = redis.Redis.from_url(redis_server.url, client_name=name)
    pubsub = ghost.pubsub()
    pubsub.subscribe(keys.events)
    try:
        client.hset(keys.status("ghost"), "_process", json.dumps({"connection": name}))
        client.zadd(keys.processes, {"ghost": time.time()})
        store = SpecStore(client, prefix)
        assert wait_for(lambda: set(store.processes()) == {"ghost", worker.process_id})
        listed = client_lists(client)
        with subprocess.Popen(
            [tool("coordinator"), "publish", "g", "-t", "fleet_worker.work", "--value", "result",
             "--wait", "--timeout", "20"],
            env=server_env(redis_server.url, prefix),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:  # fmt: skip
            assert wait_for(lambda: applied_everywhere(store, "g", [worker.process_id]), 10)
            # The ghost leaves once the command has read the fleet (its CLIENT LIST): had it
            # left before, it would not be waited for at all, not dropped from the wait.
            assert wait_for(lambda: client_lists(client) > listed, 10)
            pubsub.close()
            out, err = proc.communicate(timeout=30)
        # Exit 3 ("timed out") had the wait gone on for the ghost until --timeout.
        assert proc.returncode == 0, err
        assert worker.process_id in err and "ghost" not in err  # the result table: stderr
    finally:
        pubsub.close()
        ghost.close()
        worker.close()
        client.close()


def client_lists(client: redis.Redis) -> int:
    """Return how many CLIENT LIST commands the server has run (Redis 7 counts the
    subcommand apart; 6.2 counts every CLIENT command under one name)."""
    stats = client.info("commandstats")
    return sum(
        v["calls"] for k, v in stats.items() if k in ("cmdstat_client|list", "cmdstat_client")
    )


def test_a_process_that_left_before_the_wait_is_named_offline(
    redis_server: RedisServer, prefix: str
) -> None:
    """A process whose connection closed before publish --wait read the fleet is not waited
    for, and the warning says it is offline, not that its heartbeat is late."""
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_server.url)
    worker = Worker(redis_server.url, prefix)
    try:
        client.hset(keys.status("ghost"), "_process", json.dumps({"connection": "gone-1"}))
        client.zadd(keys.processes, {"ghost": time.time()})
        result = coordinator(
            redis_server.url, prefix, "publish", "g2", "-t", "fleet_worker.work",
            "--value", "result", "--wait", "--timeout", "20",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(
            "warning: 1 process is offline (connection closed, or no heartbeat) and not "
            "waited for: ghost\n"
        ), result.stderr
        assert "late" not in result.stderr
    finally:
        worker.close()
        client.close()
