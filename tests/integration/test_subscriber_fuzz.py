"""Fuzzing a live subscriber over a real Redis: a storm of bad messages harms nothing."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

import diagnose
from diagnose.clock import expiry_timestamp
from diagnose_redis import Keys, SpecStore
from diagnose_redis._subscriber.listener import Subscriber
from diagnose_redis.protocol import encode_event, encode_spec
from support.waiting import wait_for
from support.wire_fuzz import LM, SECRET, bad_messages, bad_specs, fuzz_settings

TARGET = f"{__name__}.target"
POOL = 10  # bad specs are published under this many ids, each overwriting the last


def target(x: int) -> int:
    """Return x times three: the function the good spec probes after the storm."""
    return x * 3


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Collect the exceptions that end any thread during the test."""
    caught: list[threading.ExceptHookArgs] = []
    saved = threading.excepthook
    threading.excepthook = caught.append
    try:
        yield caught
    finally:
        threading.excepthook = saved


def publish_unchecked(client: redis.Redis, keys: Keys, spec_id: str, spec: dict[str, Any]) -> None:
    """Store and publish a signed spec as SpecStore.put does, but without validating it."""

    def put(pipe: Any) -> None:
        version = int(pipe.get(keys.version) or 0) + 1
        pipe.multi()
        pipe.set(keys.spec(spec_id), encode_spec(spec_id, spec, SECRET))
        pipe.sadd(keys.ids, spec_id)
        pipe.publish(keys.events, encode_event("put", spec_id, version, spec, SECRET))
        pipe.set(keys.version, version)

    client.transaction(put, keys.version)


def test_a_storm_of_bad_messages_harms_nothing_and_each_is_counted(
    redis_url: str, prefix: str, manager: Any, thread_errors: list[Any]
) -> None:
    """Garbage, mutated, wrongly typed, deep, oversized, unsigned and forged messages are each
    dropped and counted; specs sound on the wire but of wrong types or bomb expressions get a
    status field for their last version; no thread dies, and a good spec published afterwards
    is applied."""
    client = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    sub = Subscriber(redis_url, process_id="fuzz:1", prefix=prefix, secret=SECRET, manager=manager)
    sub.start()
    sent = {"bad": 0, "specs": 0}
    last: dict[str, dict[str, Any]] = {}
    try:
        assert sub.connected.wait(5)

        @fuzz_settings
        @given(batch=st.lists(bad_messages, min_size=1, max_size=3), spec=st.none() | bad_specs())
        def storm(batch: list[bytes], spec: dict[str, Any] | None) -> None:
            pipe = client.pipeline(transaction=False)
            for raw in batch:
                pipe.publish(keys.events, raw)
            pipe.execute()
            sent["bad"] += len(batch)
            if spec is not None:
                n = sent["specs"] = sent["specs"] + 1
                spec["lastmodified"] = LM + dt.timedelta(microseconds=n)
                spec_id = f"bad-{n % POOL}"
                publish_unchecked(client, keys, spec_id, spec)
                last[spec_id] = spec

        storm()
        total = sent["bad"] + sent["specs"]
        assert wait_for(lambda: sub.received == total, 60), (sub.received, total)
        assert sub.dropped.total() == sent["bad"], (dict(sub.dropped), sent)
        assert set(sub.dropped) <= {"malformed", "oversized", "unsigned", "forged"}

        # Each bad spec that is not already expired by its own lifespan has a status field
        # for its last version (mostly an error: they are not applicable).
        expected = {
            spec_id
            for spec_id, spec in last.items()
            if (expiry_timestamp(spec) or float("inf")) > dt.datetime.now(dt.UTC).timestamp()
        }
        store = SpecStore(client, prefix, secret=SECRET)

        def reported() -> dict[str, Any]:
            fields = store.status().get("fuzz:1", {})
            return {k: v for k, v in fields.items() if k.startswith("bad-")}

        def all_reported() -> bool:
            fields = reported()
            return set(fields) == expected and all(
                fields[i]["lm"] == last[i]["lastmodified"] for i in expected
            )

        assert wait_for(all_reported, 20), (reported(), expected)

        store.put(
            "good",
            {"target": TARGET, "instrument": {"type": "test", "name": "good", "value": "result"}},
        )
        assert wait_for(lambda: "good" in reported_ok(manager), 10)
        assert target(5) == 15
        probe = diagnose.probes.active_probes[TARGET]
        assert [value for _, value in next(iter(probe.instruments.values())).log] == [15]

        assert thread_errors == []
        assert sub.running and sub.connected.is_set()
        assert all(thread.is_alive() for thread in sub._threads.values())
        assert (sub.errors, sub.error) == (0, None)
        print(
            f"\nfuzz: {sent['bad']} bad messages, {sent['specs']} bad specs, "
            f"dropped {dict(sub.dropped)}"
        )
    finally:
        sub.stop()
        client.close()


def reported_ok(manager: Any) -> set[str]:
    """Return the ids of the specs the manager applied without error."""
    return {
        spec_id
        for spec_id, spec in manager.specs.items()
        if (spec.get("applied") or {}).get(manager.process_id, {"err": 1})["err"] is None
    }


def test_a_deeply_nested_put_is_dropped_as_malformed(
    redis_url: str, prefix: str, manager: Any, thread_errors: list[Any]
) -> None:
    """A signed put nesting 900 levels at the next version is dropped and counted (it used to
    reach the spec comparison, which recursed out and lost the burst it came in)."""
    from support.wire_fuzz import good_spec, nested, seal

    client = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    deep = good_spec()
    deep["instrument"]["custom"] = {"deep": nested(900)}
    with Subscriber(
        redis_url, process_id="fuzz:2", prefix=prefix, secret=SECRET, manager=manager
    ).start() as sub:
        assert sub.connected.wait(5)
        client.publish(keys.events, seal({"op": "put", "id": "deep", "version": 1, "spec": deep}))
        assert wait_for(lambda: sub.dropped == {"malformed": 1})
        store = SpecStore(client, prefix, secret=SECRET)
        store.put(
            "good",
            {"target": TARGET, "instrument": {"type": "test", "name": "g", "value": "result"}},
        )
        assert wait_for(lambda: "good" in reported_ok(manager))
        assert "deep" not in manager.specs
        assert (sub.errors, thread_errors) == (0, [])
    client.close()
