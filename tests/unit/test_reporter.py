"""The status reporter's writes on fakeredis: a full rewrite, and no write without a change."""

from __future__ import annotations

import json
from typing import cast

import fakeredis
import redis

from diagnose_redis import Keys
from diagnose_redis._status.reporter import StatusReporter
from diagnose_redis.protocol import PROCESS_FIELD


def info() -> str:
    """Return a fixed ``_process`` value."""
    return json.dumps({"pid": 1})


def fields(client: redis.Redis, key: str) -> dict[str, str]:
    """Return a hash as text."""
    # redis-py types hgetall() as bytes | str whatever decode_responses is; off here: bytes.
    raw = cast(dict[bytes, bytes], client.hgetall(key))
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_poke_full_rewrites_the_hash() -> None:
    """poke(full=True) replaces the hash: a stray field written by someone else goes."""
    client = fakeredis.FakeRedis()
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info)
    reporter.update({"a": "1"}, wake=False)
    reporter.flush()
    key = keys.status("p1")
    client.hset(key, "stray", "x")
    reporter.poke(full=True)
    reporter.flush()
    assert fields(client, key) == {"a": "1", PROCESS_FIELD: info()}


def test_flush_without_changes_writes_nothing() -> None:
    """A flush with nothing dirty and no heartbeat due sends no command."""
    client = fakeredis.FakeRedis()
    reporter = StatusReporter(client, Keys("rep"), "p1", info, heartbeat=60)
    reporter.update({"a": "1"}, wake=False)
    reporter.flush()
    writes = reporter.writes
    reporter.flush()
    assert reporter.writes == writes == 1
