"""Tests of the status reporter: what it writes to the status hash, when, and what it removes."""

from __future__ import annotations

import json
from typing import cast

import redis

from coordinator.embedded import RedisServer
from diagnose_redis import Keys
from diagnose_redis._status.reporter import StatusReporter
from diagnose_redis.protocol import PROCESS_FIELD, STATUS_TTL_SECONDS
from support.waiting import wait_for


def info() -> str:
    """Return a fixed ``_process`` value."""
    return json.dumps({"pid": 1})


def fields(client: redis.Redis, key: str) -> dict[str, str]:
    """Return a hash as text."""
    # redis-py types hgetall() as bytes | str whatever decode_responses is; off here: bytes.
    raw = cast(dict[bytes, bytes], client.hgetall(key))
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_flush_writes_only_changed_fields(client: redis.Redis) -> None:
    """After the first write, a flush sends the changed field and _process, nothing else."""
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info)
    reporter.update({"a": "1", "b": "2"}, wake=False)
    reporter.flush()
    key = keys.status("p1")
    assert fields(client, key) == {"a": "1", "b": "2", PROCESS_FIELD: info()}
    client.hset(key, "b", "changed elsewhere")
    reporter.update({"a": "3"}, wake=False)
    reporter.flush()
    assert fields(client, key) == {"a": "3", "b": "changed elsewhere", PROCESS_FIELD: info()}


def test_none_deletes_a_field(client: redis.Redis) -> None:
    """A field updated to None is deleted from the hash."""
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info)
    reporter.update({"a": "1", "b": "2"}, wake=False)
    reporter.flush()
    reporter.update({"a": None}, wake=False)
    reporter.flush()
    assert fields(client, keys.status("p1")) == {"b": "2", PROCESS_FIELD: info()}


def test_heartbeat_sets_ttl_and_score_and_stop_removes_all(client: redis.Redis) -> None:
    """The thread heartbeats (TTL on the hash, score in processes); stop() removes both."""
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=0.2, coalesce=0.0)
    reporter.update({"a": "1"})
    reporter.start()
    key = keys.status("p1")
    try:
        assert wait_for(lambda: client.zscore(keys.processes, "p1") is not None)
        assert 0 < client.ttl(key) <= STATUS_TTL_SECONDS
        first = client.zscore(keys.processes, "p1")
        assert wait_for(lambda: client.zscore(keys.processes, "p1") != first, timeout=2)
    finally:
        reporter.stop()
    assert not client.exists(key) and client.zscore(keys.processes, "p1") is None
    assert reporter.writes >= 2


def test_failed_write_is_retried_whole(private_redis: RedisServer) -> None:
    """After Redis comes back empty, the reporter rewrites every field by itself."""
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1)
    keys = Keys("rep")
    reporter = StatusReporter(client, keys, "p1", info, heartbeat=0.2, coalesce=0.0)
    reporter.update({"a": "1", "b": "2"})
    reporter.start()
    key = keys.status("p1")
    try:
        assert wait_for(lambda: client.hget(key, "b") == b"2")
        private_redis.kill()
        reporter.update({"a": "3"})
        assert wait_for(lambda: reporter.failures >= 1)
        private_redis.start()
        assert wait_for(
            lambda: fields(client, key) == {"a": "3", "b": "2", PROCESS_FIELD: info()}, timeout=5
        )
    finally:
        reporter.stop()
        client.close()


def test_a_heartbeat_brings_back_an_expired_hash_whole(redis_url: str, prefix: str) -> None:
    """If the status key expired (a starved process), the next heartbeat writes every field,
    not only those that changed since."""
    client = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    reporter = StatusReporter(client, keys, "starved:1", lambda: "{}", heartbeat=0.2)
    try:
        reporter.update({"a": '{"lm": null, "err": null, "at": null}', "b": "{}"}, wake=False)
        reporter.flush()
        assert client.hlen(keys.status("starved:1")) == 3
        client.delete(keys.status("starved:1"))  # as if its TTL ran out
        reporter.update({"b": '{"x": 1}'}, wake=False)
        reporter.start()
        assert wait_for(lambda: client.hlen(keys.status("starved:1")) == 3, 5)
    finally:
        reporter.stop()
        client.close()


def test_a_write_of_changed_fields_asks_for_their_counts_only(client: redis.Redis) -> None:
    """A heartbeat asks for every spec's counts; a write of changed fields for theirs only
    (a process with many probes counts one at a publish); a counts callable that takes no
    spec ids is asked for all, and its counts still go in."""
    from diagnose.clock import utcnow
    from diagnose_redis.protocol import StatusField

    asked: list[object] = []
    counts = {
        "a": {"fired": 2, "dropped": 0, "errors": 0},
        "b": {"fired": 5, "dropped": 1, "errors": 0},
    }

    def by_id(spec_ids: object = None) -> dict[str, dict[str, int]]:
        asked.append(None if spec_ids is None else sorted(spec_ids))  # type: ignore[call-overload]
        return counts if spec_ids is None else {i: counts[i] for i in spec_ids if i in counts}  # type: ignore[attr-defined]

    keys = Keys("rep")
    key = keys.status("p1")
    now = utcnow()
    reporter = StatusReporter(client, keys, "p1", info, counts=by_id)
    reporter.update(
        {"a": StatusField.of(now, None, now), "b": StatusField.of(now, None, now)}, wake=False
    )
    reporter.flush()  # the first write is whole: every count
    assert asked == [None]
    counts["a"] = {"fired": 0, "dropped": 0, "errors": 0}
    reporter.update({"a": StatusField.of(now, None, now)}, wake=False)
    reporter.flush()
    assert asked == [None, ["a"]]
    written = fields(client, key)
    assert json.loads(written["a"])["fired"] == 0 and json.loads(written["b"])["fired"] == 5

    everything: list[int] = []

    def all_at_once() -> dict[str, dict[str, int]]:
        everything.append(1)
        return {"a": {"fired": 7, "dropped": 0, "errors": 1}}

    old_style = StatusReporter(client, keys, "p2", info, counts=all_at_once)
    old_style.update({"a": StatusField.of(now, None, now)}, wake=False)
    old_style.flush()
    old_style.update({"a": StatusField.of(now, "boom", now)}, wake=False)
    old_style.flush()
    assert len(everything) >= 2
    field = json.loads(fields(client, keys.status("p2"))["a"])
    assert (field["err"], field["fired"], field["errors"]) == ("boom", 7, 1)
