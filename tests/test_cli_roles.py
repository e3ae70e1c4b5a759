"""`coordinator processes` and `publish --wait` with a pre-fork parent in the fleet."""

from __future__ import annotations

import json
import time

import redis

from app_servers import coordinator
from diagnose_redis import Keys


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
    started = time.monotonic()
    result = coordinator(redis_url, prefix, "publish", "p", "-t", "a.b", "-v", "1", "--wait")
    assert result.returncode == 3 and "no processes are online" in result.stderr
    assert time.monotonic() - started < 8
