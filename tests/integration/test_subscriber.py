"""Tests of the subscriber in this process: resync, gaps, bad messages, expiry, slow applies."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, cast

import msgpack
import pytest
import redis

import diagnose
import diagnose_redis
from diagnose_redis import SpecStore
from diagnose_redis._subscriber.listener import Subscriber
from diagnose_redis.protocol import MAX_MESSAGE_BYTES, codec, encode_event, encode_spec, signing
from support.waiting import wait_for

TARGET = f"{__name__}.target"


def target(x: int) -> int:
    """Return x plus one: the function these tests probe."""
    return x + 1


def spec(value: str = "result", lifespan: float | None = None, **extra: Any) -> dict[str, Any]:
    """Return a test instrument spec on target."""
    return {
        "target": extra.pop("target", TARGET),
        "instrument": {"type": "test", "name": "t", "value": value},
        "lifespan": lifespan,
        **extra,
    }


def subscribe(url: str, prefix: str, mgr: Any, secret: str | None = None) -> Subscriber:
    """Start a Subscriber on a manager and wait until it is connected."""
    sub = Subscriber(url, process_id="test:1", prefix=prefix, secret=secret, manager=mgr).start()
    assert sub.connected.wait(5)
    return sub


def applied(mgr: Any, spec_id: str) -> bool:
    """Return True if the manager holds spec_id and applied it without error."""
    entry = mgr.specs.get(spec_id, {}).get("applied", {}).get(mgr.process_id)
    return entry is not None and entry["err"] is None


def probe_on_target() -> bool:
    """Return True if a probe is attached to target."""
    return TARGET in diagnose.probes.active_probes


def test_start_once_and_stop_removes_status(redis_url: str, prefix: str, manager: Any) -> None:
    """start() returns the same subscriber twice; stop() removes its status and heartbeat."""
    first = diagnose_redis.start(redis_url, prefix=prefix, manager=manager, process_id="p:1")
    try:
        assert diagnose_redis.start() is first
        store = SpecStore(redis.Redis.from_url(redis_url), prefix)
        assert wait_for(lambda: "p:1" in store.processes())
    finally:
        first.stop()
    assert store.status() == {} and store.processes() == {}
    assert diagnose_redis.start(redis_url, prefix=prefix, manager=manager) is not first
    diagnose_redis.start().stop()


def test_status_is_plain_json(client: redis.Redis, redis_url: str, prefix: str, manager) -> None:
    """A good spec and a bad one show in the status hash as JSON, the bad one with its error."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager):
        store.put_many({"good": spec(), "bad": spec(target="no.such.module_function")})
        key = store.keys.status("test:1")
        assert wait_for(lambda: {b"good", b"bad", b"_process"} <= set(client.hkeys(key)))
        # redis-py types hgetall() as bytes | str whatever decode_responses is; off here: bytes.
        raw = cast(dict[bytes, bytes], client.hgetall(key))
        fields = {k.decode(): json.loads(v) for k, v in raw.items()}
        assert fields["good"]["err"] is None and fields["bad"]["err"]
        good = store.get("good")
        assert good is not None
        assert fields["good"]["lm"] == good["lastmodified"].isoformat()
        # _process is rewritten by heartbeats: its version is the one of the last one.
        assert fields["_process"]["version"] in (0, 1, 2) and fields["_process"]["pid"] > 0
        assert probe_on_target()
        assert target(1) == 2


def test_put_and_remove_apply(client: redis.Redis, redis_url: str, prefix: str, manager) -> None:
    """A published spec attaches a probe that fires; removing it detaches the probe."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager):
        store.put("a", spec("x * 10"))
        assert wait_for(lambda: applied(manager, "a"))
        target(4)
        assert diagnose.probes.active_probes[TARGET].instruments
        store.remove("a")
        assert wait_for(lambda: not probe_on_target())
        assert "a" not in manager.specs


def test_resync_on_version_gap(client: redis.Redis, redis_url: str, prefix: str, manager) -> None:
    """An event whose version skips ahead makes the subscriber read the full state."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager) as sub:
        lm = dt.datetime.now(dt.UTC)
        client.set(store.keys.spec("hidden"), encode_spec("hidden", {**spec(), "lastmodified": lm}))
        client.sadd(store.keys.ids, "hidden")
        client.set(store.keys.version, 5)
        client.publish(store.keys.events, encode_event("delete", "other", 5))
        assert wait_for(lambda: applied(manager, "hidden"))
        assert sub.resyncs >= 2 and sub.version == 5


def test_version_event_triggers_resync(client: redis.Redis, redis_url: str, prefix, manager):
    """A version announcement ahead of the subscriber makes it resync."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager):
        lm = dt.datetime.now(dt.UTC)
        client.set(store.keys.spec("quiet"), encode_spec("quiet", {**spec(), "lastmodified": lm}))
        client.sadd(store.keys.ids, "quiet")
        client.set(store.keys.version, 1)
        store.publish_version()
        assert wait_for(lambda: applied(manager, "quiet"))


def signed(message: dict[str, Any]) -> bytes:
    """Return a message correctly signed with the key "k", whatever it holds."""
    return codec._seal(message, b"k", signing.EVENT_DOMAIN)


def _forged() -> bytes:
    raw = encode_event("put", "evil", 1, {**spec(), "lastmodified": dt.datetime.now(dt.UTC)}, b"k")
    return raw.replace(b"result", b"resulT")


BAD_MESSAGES = {
    "malformed": [
        b"not msgpack \xc1",
        msgpack.packb([1, 2, 3]),
        signed({"op": "put", "id": "x"}),
        signed({"op": "put", "id": "x", "version": 1, "spec": {"target": 3}}),
        signed({"op": "drop-tables", "id": "x", "version": 1}),
    ],
    "oversized": [b"\x80" * (MAX_MESSAGE_BYTES + 1)],
    "unsigned": [encode_event("delete", "x", 1)],
    "forged": [_forged(), encode_event("delete", "x", 1, secret=b"other")],
}


def test_bad_messages_dropped_and_counted(client, redis_url: str, prefix: str, manager) -> None:
    """Garbage, oversized, unsigned and forged messages are dropped, counted, and harmless."""
    store = SpecStore(client, prefix, secret="k")
    with subscribe(redis_url, prefix, manager, secret="k") as sub:
        for messages in BAD_MESSAGES.values():
            for raw in messages:
                client.publish(store.keys.events, raw)
        store.put("good", spec())
        assert wait_for(lambda: applied(manager, "good"))
        assert wait_for(lambda: sub.dropped == {k: len(v) for k, v in BAD_MESSAGES.items()})
        assert set(manager.specs) == {"good"} and sub.connected.is_set()

        def forged_counted() -> bool:
            # The status hash may not be written yet: read it leniently until it is.
            process = (store.status().get("test:1") or {}).get("_process") or {}
            return bool((process.get("dropped") or {}).get("forged") == 2)

        assert wait_for(forged_counted)


def test_resync_skips_unsigned_stored_specs(client, redis_url: str, prefix: str, manager):
    """A subscriber with a secret applies no stored spec that is unsigned or signed otherwise."""
    SpecStore(client, prefix).put("plain", spec())
    SpecStore(client, prefix, secret="other").put("other", spec())
    SpecStore(client, prefix, secret="k").put("signed", spec())
    with subscribe(redis_url, prefix, manager, secret="k") as sub:
        assert wait_for(lambda: applied(manager, "signed"))
        assert set(manager.specs) == {"signed"}
        assert sub.dropped == {"unsigned": 1, "forged": 1}


@pytest.mark.parametrize("redis_down", [False, True], ids=["redis-up", "redis-down"])
def test_local_expiry(private_redis, prefix: str, manager, redis_down: bool) -> None:
    """A probe detaches within 1 s of its lifespan's end, whether Redis is reachable or not
    (checked against twice that, for a loaded machine)."""
    client = redis.Redis.from_url(private_redis.url)
    store = SpecStore(client, prefix)
    with subscribe(private_redis.url, prefix, manager):
        lm = dt.datetime.now(dt.UTC)
        store.put("short", spec(lifespan=1.5 / 60, lastmodified=lm))
        assert wait_for(lambda: applied(manager, "short"))
        if redis_down:
            private_redis.kill()
        expiry = lm.timestamp() + 1.5
        assert wait_for(lambda: not probe_on_target(), timeout=expiry - time.time() + 2.0)
        assert time.time() < expiry + 2.0 and "short" not in manager.specs
        assert target(1) == 2
    client.close()


def test_slow_apply_keeps_subscription(client, redis_url: str, prefix: str, manager) -> None:
    """A blocked apply never lets the pub/sub output buffer overflow: nothing is lost."""
    store = SpecStore(client, prefix)
    old = client.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    client.config_set("client-output-buffer-limit", "pubsub 32kb 16kb 60")
    try:
        with subscribe(redis_url, prefix, manager) as sub:
            padding = "x" * 2000
            with manager.lock:
                for i in range(200):
                    store.put(f"s{i}", spec(f"result or {padding!r}"))
                assert wait_for(lambda: sub.received == 200)
            assert wait_for(lambda: len(manager.specs) == 200 and sub.version == 200)
            assert sub.reconnects == 1 and sub.resyncs == 1
    finally:
        client.config_set("client-output-buffer-limit", old)


def test_order_kept_across_queued_and_direct_applies(client, redis_url: str, prefix, manager):
    """Work queued while the manager was busy is applied before anything read after it."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager) as sub:
        with manager.lock:
            store.put("s", spec("result * 1"))
            assert wait_for(lambda: sub.received == 1)
        # Published while the applier may still hold the first put: the listener must queue
        # this one behind it rather than apply it first.
        store.put("s", spec("result * 2"))
        stored = store.get("s")
        assert stored is not None
        last = stored["lastmodified"]
        assert wait_for(lambda: sub.version == 2 and applied(manager, "s"))
        assert manager.specs["s"]["instrument"]["value"] == "result * 2"
        assert manager.specs["s"]["lastmodified"] == last

        def reported_lm() -> Any:
            return (store.status("s").get("test:1", {}).get("s") or {}).get("lm")

        assert wait_for(lambda: reported_lm() == last)


def test_runtime_error_of_an_instrument_reaches_status(client, redis_url: str, prefix, manager):
    """An instrument failing in a host thread shows as the spec's error in the status hash."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager):
        store.put("boom", spec("result.no_such_attribute"))
        assert wait_for(lambda: applied(manager, "boom"))
        assert target(1) == 2  # the instrument fails; the target does not
        key = store.keys.status("test:1")

        def error() -> str | None:
            raw = client.hget(key, "boom")
            return json.loads(raw)["err"] if raw else None

        message = wait_for(error)
        assert message and "runtime error" in message and "no_such_attribute" in message


def test_stop_is_prompt_while_listener_waits(
    redis_url: str, prefix: str, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() wakes the listener from its read instead of waiting out its timeout: with a
    read that would last two minutes, every thread has ended when stop() returns."""
    from diagnose_redis._subscriber import listener

    for name in ("READ_TIMEOUT", "HEALTH_SECONDS", "RESYNC_SECONDS"):
        monkeypatch.setattr(listener, name, 120.0)
    sub = subscribe(redis_url, prefix, manager)
    sub.stop(timeout=30)
    assert not any(t.is_alive() for t in sub._threads.values())


README_ACL = (
    "resetchannels ~P:* &P:* &__keyevent@*__:expired +@read +@write +@pubsub +@transaction "
    "+ping +info +client|setname +client|list"
)


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        (README_ACL, True),
        (README_ACL.replace(" &__keyevent@*__:expired", "").replace(" +client|setname", ""), False),
    ],
    ids=["readme-acl", "no-keyevents-no-setname"],
)
def test_works_under_a_fleet_acl(private_redis, manager, rule: str, named: bool) -> None:
    """Under the README's ACL the subscriber is named and seen live; without the expired-key
    channel and CLIENT SETNAME it still applies what is published."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "fleet", "on", ">pw", *rule.replace("P", "acl").split())
    admin.close()
    url = private_redis.url.replace("redis://", "redis://fleet:pw@")
    client = redis.Redis.from_url(url)
    store = SpecStore(client, "acl")
    with subscribe(url, "acl", manager) as sub:
        store.put("a", spec())
        assert wait_for(lambda: applied(manager, "a"))
        assert (sub.identity.connection_name is not None) == named
        assert wait_for(lambda: "test:1" in store.processes())
        assert sub.alerts.lines == 0
    client.close()


def test_status_fields_carry_the_counters(client, redis_url: str, prefix: str, manager) -> None:
    """fired, dropped and errors reach each spec's status field by the next heartbeat."""
    store = SpecStore(client, prefix)
    with subscribe(redis_url, prefix, manager):
        limited = spec("result")
        limited["instrument"]["custom"] = {"rate": 5}
        store.put("lim", limited)
        assert wait_for(lambda: applied(manager, "lim"))
        for x in range(100):
            assert target(x) == x + 1

        def counts() -> Any:
            field = store.status("lim").get("test:1", {}).get("lim") or {}
            return (field.get("fired"), field.get("dropped"), field.get("errors"))

        assert wait_for(lambda: counts() == (5, 95, 0), timeout=15), counts()


def test_a_silent_subscription_is_pinged_then_given_up_and_remade(
    private_redis: Any, prefix: str, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener pings a subscription that has been silent for HEALTH_SECONDS and gives
    it up after three times as long without an answer (Redis stopped with SIGSTOP here, as a
    host that vanished would look): it reconnects once Redis answers again, resyncs, and
    applies what was published meanwhile."""
    import signal

    from diagnose_redis._subscriber import listener

    monkeypatch.setattr(listener, "HEALTH_SECONDS", 0.3)
    sub = subscribe(private_redis.url, prefix, manager)
    store = SpecStore(redis.Redis.from_url(private_redis.url), prefix)
    try:
        # Silent but alive: pinged (three times: longer than the give-up time) and answered,
        # the subscription stays.
        def pings() -> int:
            return int(store.client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))

        assert wait_for(lambda: pings() >= 3, 5), "never pinged"
        assert sub.connected.is_set() and sub.reconnects == 1
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            assert wait_for(lambda: not sub.connected.is_set(), 5), "never gave up"
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        store.put("later", spec())
        assert wait_for(lambda: sub.connected.is_set() and applied(manager, "later"), 10)
        assert sub.reconnects >= 2
    finally:
        sub.stop()
        store.client.close()
