"""Tests of SpecStore, the publishing API, against a real redis-server."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import msgpack
import pytest
import redis

from diagnose import SpecError
from diagnose_redis import Keys, SpecStore
from diagnose_redis.protocol import decode_event, encode_status_field
from support.waiting import wait_for

SPEC = {
    "target": "pkg.mod.func",
    "instrument": {"type": "log", "name": "n", "value": "result"},
    "lifespan": None,
}


@pytest.fixture(params=[None, "s3cret"], ids=["unsigned", "signed"])
def store(request: pytest.FixtureRequest, client: redis.Redis, prefix: str) -> SpecStore:
    """A SpecStore, with and without a secret."""
    return SpecStore(client, prefix, secret=request.param)


class Channel:
    """Collect the events published on a store's channel."""

    def __init__(self, client: redis.Redis, store: SpecStore) -> None:
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(store.keys.events)
        self.pubsub.get_message(timeout=1)
        self.secret = store.secret

    def events(self, count: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while len(events) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                events.append(decode_event(message["data"], self.secret))
        return events


def test_put_stores_publishes_and_versions(store: SpecStore, client: redis.Redis) -> None:
    """put stores the spec without applied, bumps the version and publishes a put event."""
    channel = Channel(client, store)
    assert store.put("a", SPEC) == 1
    assert store.put("b", {**SPEC, "lifespan": 1}) == 2
    events = channel.events(2)
    assert [(e["op"], e["id"], e["version"]) for e in events] == [("put", "a", 1), ("put", "b", 2)]
    assert events[0]["spec"]["target"] == "pkg.mod.func"
    assert store.version() == 2
    stored = msgpack.unpackb(client.get(store.keys.spec("a")), timestamp=3)
    assert "applied" not in stored and stored["lastmodified"].tzinfo is not None
    got = store.get("a")
    assert got is not None and got["instrument"]["event"] == "return"
    assert set(store.specs()) == {"a", "b"}


def test_lifespan_becomes_ttl(store: SpecStore) -> None:
    """A spec's TTL is its remaining lifespan; None means no expiry."""
    lm = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    store.put("a", {**SPEC, "lifespan": 1, "lastmodified": lm})
    store.put("b", SPEC)
    ttl = store.pttl("a")
    assert ttl is not None and 25_000 < ttl <= 30_000
    assert store.pttl("b") is None
    assert store.pttl("missing") == 0


@pytest.mark.parametrize(
    ("spec_id", "spec"),
    [
        ("bad id", SPEC),
        ("", SPEC),
        ("a", {**SPEC, "target": "nodots"}),
        ("a", {**SPEC, "lifespan": 1, "lastmodified": dt.datetime(2000, 1, 1)}),
    ],
)
def test_put_refuses_bad_input(store: SpecStore, spec_id: str, spec: dict) -> None:
    """Invalid ids, invalid specs and already-expired specs raise SpecError and change nothing."""
    with pytest.raises(SpecError):
        store.put(spec_id, spec)
    assert store.version() == 0 and store.specs() == {}


def test_put_many_is_one_version_per_spec(store: SpecStore, client: redis.Redis) -> None:
    """put_many publishes every spec with consecutive versions and returns the last."""
    channel = Channel(client, store)
    assert store.put_many({"a": SPEC, "b": SPEC, "c": SPEC}) == 3
    assert [e["version"] for e in channel.events(3)] == [1, 2, 3]


def test_remove_publishes_deletes(store: SpecStore, client: redis.Redis) -> None:
    """remove deletes the existing specs, publishes their removal and reports them."""
    store.put_many({"a": SPEC, "b": SPEC})
    channel = Channel(client, store)
    assert store.remove("a", "zzz") == ["a"]
    assert [(e["op"], e["id"], e["version"]) for e in channel.events(1)] == [("delete", "a", 3)]
    assert set(store.specs()) == {"b"}
    assert store.remove("zzz") == []


def test_sweep_expired_publishes_deletes(store: SpecStore, client: redis.Redis) -> None:
    """sweep_expired finds indexed specs whose key expired and publishes their removal."""
    store.put_many({"a": SPEC, "b": SPEC})
    client.delete(store.keys.spec("a"))
    channel = Channel(client, store)
    assert store.sweep_expired() == ["a"]
    assert [(e["op"], e["id"]) for e in channel.events(1)] == [("delete", "a")]
    assert store.sweep_expired() == []
    assert client.smembers(store.keys.ids) == {b"b"}


def test_publish_version_announces_without_bumping(store: SpecStore, client: redis.Redis) -> None:
    """publish_version sends a version event with the current version and does not bump it."""
    store.put("a", SPEC)
    channel = Channel(client, store)
    assert store.publish_version() == 1
    assert channel.events(1) == [{"op": "version", "id": "", "version": 1}]
    assert store.version() == 1


def test_signed_store_refuses_unsigned_specs(client: redis.Redis, prefix: str) -> None:
    """A store with a secret skips stored specs that are unsigned or signed with another key."""
    SpecStore(client, prefix).put("plain", SPEC)
    SpecStore(client, prefix, "other").put("other", SPEC)
    SpecStore(client, prefix, "k").put("good", SPEC)
    assert set(SpecStore(client, prefix, "k").specs()) == {"good"}


def test_status_and_processes(store: SpecStore, client: redis.Redis) -> None:
    """status decodes every process's hash; processes and prune_processes follow heartbeats."""
    keys = Keys(store.keys.prefix)
    now = dt.datetime.now(dt.UTC)
    client.hset(
        keys.status("h:1"),
        mapping={
            "a": encode_status_field(now, None, now),
            "_process": '{"host": "h", "pid": 1}',
        },
    )
    client.hset(keys.status("h:2"), mapping={"a": encode_status_field(now, "boom", now)})
    client.zadd(keys.processes, {"h:1": time.time(), "h:2": time.time() - 100})
    report = store.status()
    assert report["h:1"]["a"] == {
        "lm": now,
        "err": None,
        "at": now,
        "fired": 0,
        "dropped": 0,
        "errors": 0,
    }
    assert report["h:1"]["_process"]["pid"] == 1
    assert report["h:2"]["a"]["err"] == "boom"
    assert set(store.status("zzz")) == {"h:1"}
    assert set(store.processes(max_age=30)) == {"h:1"}
    assert store.prune_processes(max_age=30) == ["h:2"]
    assert set(store.status()) == {"h:1"}


def test_fleet_tells_parents_apart(client: redis.Redis, prefix: str) -> None:
    """A process whose _process says role parent is listed as such and left out on request."""
    store = SpecStore(client, prefix)
    keys = store.keys
    parent = '{"pid": 1, "role": "parent", "children": 2}'
    client.hset(keys.status("master"), "_process", parent)
    client.hset(keys.status("w-1"), "_process", '{"pid": 2, "role": "process"}')
    client.zadd(keys.processes, {"master": time.time(), "w-1": time.time(), "old": time.time()})
    fleet = store.fleet()
    assert fleet["master"].parent and fleet["master"].children == 2
    assert not fleet["w-1"].parent and fleet["old"].role == "process"
    assert set(store.processes(parents=False)) == {"w-1", "old"}
    assert set(store.processes()) == {"master", "w-1", "old"}


def test_fleet_drops_a_process_whose_named_connection_is_gone(client: redis.Redis, prefix) -> None:
    """A process that names its connection is live only while that connection exists."""
    store = SpecStore(client, prefix)
    keys = store.keys
    name = keys.connection_name("w-1")
    client.hset(keys.status("w-1"), "_process", json.dumps({"connection": name}))
    client.zadd(keys.processes, {"w-1": time.time()})
    assert store.fleet() == {}
    subscriber = redis.Redis.from_url(_url(client), client_name=name)
    pubsub = subscriber.pubsub()
    pubsub.subscribe("anything")
    try:
        assert wait_for(lambda: "w-1" in store.fleet())
    finally:
        pubsub.close()
        subscriber.close()


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
