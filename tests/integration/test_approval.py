"""The two-person rule over a real Redis: a worker started with DIAGNOSE_REQUIRE_APPROVAL
applies a spec of those types only when two different keys signed its bytes, whatever was
written to Redis by hand; `coordinator publish` holds it pending and `approve` publishes it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

import diagnose
from diagnose_redis import SpecStore
from diagnose_redis._subscriber.listener import Subscriber
from diagnose_redis.exceptions import ApprovalError
from diagnose_redis.protocol import (
    Keys,
    countersign,
    encode_event,
    encode_put,
    encode_spec,
    open_spec,
    unsealed_spec,
)
from diagnose_redis.publisher import approve, hold, read_audit, read_pending
from support.cli import COORDINATOR
from support.fleet import Worker
from support.waiting import wait_for

TARGET = f"{__name__}.target"
WORKER_KEYS = "k1:alpha,k2:beta"


def target(x: int) -> int:
    """Return x plus one: the function these tests probe."""
    return x + 1


def spec(kind: str, lastmodified: dt.datetime | None = None, lifespan: float = 10) -> dict:
    """Return a spec of instrument type kind on target."""
    value = "True" if kind == "snapshot" else "result"
    return {
        "target": TARGET,
        "instrument": {"type": kind, "name": kind, "value": value, "event": "return"},
        "lifespan": lifespan,
        "lastmodified": lastmodified or dt.datetime.now(dt.UTC),
    }


@pytest.fixture
def worker(redis_url: str, prefix: str) -> Iterator[tuple[Subscriber, diagnose.ProbeManager]]:
    """A subscriber holding k1 and k2, holding snapshot and exception specs to the rule."""
    manager = diagnose.ProbeManager()
    sub = Subscriber(
        redis_url,
        process_id="w:1",
        prefix=prefix,
        secret=WORKER_KEYS,
        manager=manager,
        require_approval="snapshot,exception",
    ).start()
    assert sub.connected.wait(5)
    try:
        yield sub, manager
    finally:
        sub.stop()
        with manager.lock:
            manager.specs.clear()
            manager.apply()


def write_by_hand(
    client: redis.Redis, prefix: str, spec_id: str, blob: bytes, how: str = "event"
) -> None:
    """Store a sealed spec the way a person with redis-cli and the keys could (no
    coordinator, no pending step), and announce it with its put event (how="event") or
    with a version event, after which the worker reads the stored copy (how="resync")."""
    keys = Keys(prefix)
    version = int(client.incr(keys.version))
    _, sealed = unsealed_spec(spec_id, blob)
    client.set(keys.spec(spec_id), blob)
    client.sadd(keys.ids, spec_id)
    if how == "event":
        client.publish(keys.events, encode_put(version, sealed, "k2:beta"))
    else:
        client.publish(keys.events, encode_event("version", "", version, secret="k2:beta"))


def status_of(client: redis.Redis, prefix: str, spec_id: str) -> dict[str, Any] | None:
    """Return the worker's status field for spec_id, decoded, or None."""
    raw = client.hget(Keys(prefix).status("w:1"), spec_id)
    return None if raw is None else json.loads(raw)


def signed_by(*secrets: str, kind: str = "snapshot", ago: float = 0) -> bytes:
    """Return a stored spec (published ago minutes ago) signed by the first secret, and
    countersigned now by the others."""
    published = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=ago)
    blob = encode_spec("s", spec(kind, published), secrets[0])
    _, sealed = unsealed_spec("s", blob)
    for secret in secrets[1:]:
        sealed = countersign(sealed, secret, dt.datetime.now(dt.UTC))
    return sealed.blob


def settle(client: redis.Redis, prefix: str, manager: diagnose.ProbeManager) -> None:
    """Publish a log spec and wait until it is applied: what came before it was processed."""
    SpecStore(client, prefix, "k1:alpha", who="t").put("marker", spec("log"))
    assert wait_for(lambda: "marker" in manager.specs and status_of(client, prefix, "marker"))


@pytest.mark.parametrize("how", ["event", "resync"])
@pytest.mark.parametrize(
    ("secrets", "says"),
    [
        (("k1:alpha",), "signed by key 'k1' only"),
        (("k1:alpha", "k1:alpha"), "signed by key 'k1' only"),
        (("k2:beta", "k2:beta", "k2:beta"), "signed by key 'k2' only"),
    ],
    ids=["one-signature", "two-of-one-key", "three-of-one-key"],
)
def test_a_snapshot_written_by_hand_without_two_keys_is_never_applied(
    client: redis.Redis,
    prefix: str,
    worker: Any,
    secrets: tuple[str, ...],
    says: str,
    how: str,
) -> None:
    """A snapshot spec stored by hand with one signature, or several of one key id, is not
    applied, whether it arrives by its event or is read stored; its status says why."""
    sub, manager = worker
    resyncs = sub.resyncs
    write_by_hand(client, prefix, "s", signed_by(*secrets), how)
    assert wait_for(lambda: (status_of(client, prefix, "s") or {}).get("err"))
    err = status_of(client, prefix, "s")["err"]  # type: ignore[index]
    assert err.startswith("awaiting approval") and says in err
    settle(client, prefix, manager)
    assert "s" not in manager.specs and "s" not in sub.owned
    assert (sub.resyncs > resyncs) == (how == "resync")


def test_a_snapshot_signed_by_two_keys_applies(
    client: redis.Redis, prefix: str, worker: Any
) -> None:
    """The same snapshot signed by k1 and approved by k2 applies, with its lastmodified at
    the approval."""
    _, manager = worker
    blob = signed_by("k1:alpha", "k2:beta", ago=5)
    write_by_hand(client, prefix, "s", blob)
    assert wait_for(lambda: status_of(client, prefix, "s"))
    assert status_of(client, prefix, "s")["err"] is None  # type: ignore[index]
    assert manager.specs["s"]["applied"]["w:1"]["err"] is None
    _, sealed = unsealed_spec("s", blob)
    assert sealed.signatures[1].at is not None
    approved_at = dt.datetime.fromtimestamp(sealed.signatures[1].at / 1000, dt.UTC)
    lastmodified = manager.specs["s"]["lastmodified"]
    assert abs(lastmodified - approved_at) < dt.timedelta(seconds=0.01)
    assert lastmodified - unsealed_spec("s", blob)[0]["lastmodified"] > dt.timedelta(minutes=4)


def test_a_log_spec_is_not_held_by_a_rule_for_snapshot_and_exception(
    client: redis.Redis, prefix: str, worker: Any
) -> None:
    """Under DIAGNOSE_REQUIRE_APPROVAL=snapshot,exception a log spec signed by one key
    applies at once."""
    _, manager = worker
    write_by_hand(client, prefix, "l", encode_spec("l", spec("log"), "k1:alpha"))
    assert wait_for(lambda: "l" in manager.specs and status_of(client, prefix, "l"))
    assert status_of(client, prefix, "l")["err"] is None  # type: ignore[index]


def test_a_worker_declares_its_key_ids_and_policy_never_a_secret(
    client: redis.Redis, prefix: str, worker: Any
) -> None:
    """_process holds the key ids and the rule's types; no secret appears in the status."""
    sub, manager = worker
    settle(client, prefix, manager)
    sub.reporter.poke()
    values: Any = client.hvals(Keys(prefix).status("w:1"))
    raw = b"".join(values)
    info = json.loads(cast(bytes, client.hget(Keys(prefix).status("w:1"), "_process")))
    assert info["keys"] == ["k1", "k2"] and info["approval"] == ["exception", "snapshot"]
    assert b"alpha" not in raw and b"beta" not in raw


def test_approval_publishes_a_pending_spec_and_its_lifespan_runs_from_then(
    client: redis.Redis, prefix: str, worker: Any
) -> None:
    """hold() stores a snapshot pending, unpublished; approve() with the publisher's own key
    is refused; with another key it publishes, its lifespan running from the approval (here
    a spec whose lastmodified + lifespan is already past)."""
    _, manager = worker
    alice = SpecStore(client, prefix, "k1:alpha", who="alice")
    bob = SpecStore(client, prefix, "k2:beta", who="bob")
    published = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    assert hold(alice, {"s": spec("snapshot", published, lifespan=10)}) == ["s"]
    assert list(read_pending(bob)) == ["s"] and read_pending(bob)["s"].who == "alice"
    assert not client.exists(Keys(prefix).spec("s"))
    with pytest.raises(ApprovalError, match="the key you sign with"):
        approve(alice, "s")
    approved = approve(bob, "s")
    assert approved.publisher == "alice" and approved.publisher_keys == ["k1"]
    assert wait_for(lambda: "s" in manager.specs)
    assert read_pending(bob) == {}
    assert 9 * 60_000 < client.pttl(Keys(prefix).spec("s")) <= 10 * 60_000
    stored = cast(bytes, client.get(Keys(prefix).spec("s")))
    lastmodified = open_spec("s", stored, WORKER_KEYS).value
    assert lastmodified["lastmodified"] - published > dt.timedelta(minutes=29)
    with pytest.raises(ApprovalError, match="the key you sign with"):
        approve(bob, "s")  # bob signed it now too
    entries = [(e["who"], e["action"]) for e in read_audit(client, Keys(prefix), 10, "s")]
    assert entries == [("alice", "publish"), ("bob", "approve")]


def coordinator(
    url: str, prefix: str, user: str, secret: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the coordinator as user, signing with secret."""
    environ = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    environ.update(DIAGNOSE_USER=user, DIAGNOSE_SECRET=secret, **env)
    environ.pop("DIAGNOSE_REQUIRE_APPROVAL", None)
    environ.update(env)
    return subprocess.run(
        [COORDINATOR, *args], env=environ, capture_output=True, text=True, timeout=60
    )


def test_two_people_at_the_command_line(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot published by alice is pending (list shows it and her), not applied; her
    own approve is refused; bob's approve publishes it and the worker applies it; a log
    spec is not held; the audit shows both people."""
    monkeypatch.setenv("DIAGNOSE_REQUIRE_APPROVAL", "snapshot,exception")
    worker = Worker(redis_url, prefix, "--secret", WORKER_KEYS, "--process-id", "w-1")
    monkeypatch.delenv("DIAGNOSE_REQUIRE_APPROVAL")
    url, run = redis_url, coordinator
    try:
        result = run(url, prefix, "alice", "k1:alpha", "publish", "snap", "-t",
                     "fleet_worker.work", "--type", "snapshot")  # fmt: skip
        assert result.returncode == 0 and result.stdout == "snap\n", result.stderr
        assert "pending approval" in result.stderr
        listed = run(url, prefix, "bob", "k2:beta", "list")
        line = next(x for x in listed.stdout.splitlines() if x.startswith("snap "))
        assert "pending" in line and "published by alice" in listed.stdout
        document = json.loads(run(url, prefix, "bob", "k2:beta", "list", "--json").stdout)
        assert document["pending"]["snap"]["by"] == "alice"
        assert "snap" not in document["specs"]
        assert worker.call(1) == []  # not applied while pending
        own = run(url, prefix, "alice", "k1:alpha", "approve", "snap")
        assert own.returncode == 1 and own.stdout == ""
        assert "key 'k1', the key you sign with" in own.stderr
        assert len(own.stderr.strip().splitlines()) == 1 and "Traceback" not in own.stderr
        approved = run(url, prefix, "bob", "k2:beta", "approve", "snap", "--wait")
        assert approved.returncode == 0 and approved.stdout == "snap\n", approved.stderr
        assert "w-1" in approved.stderr and "applied" in approved.stderr
        assert worker.call(1)[0].startswith("Snapshot (snap)")
        logged = run(url, prefix, "alice", "k1:alpha", "publish", "lg", "-t",
                     "fleet_worker.work", "--value", "x", "--wait")  # fmt: skip
        assert logged.returncode == 0 and "pending" not in logged.stderr, logged.stderr
        audit = json.loads(run(url, prefix, "carol", "k1:alpha", "audit", "--json").stdout)
        assert audit[0]["detail"].startswith("pending approval, published to no process")
        assert [(e["who"], e["action"], e["spec"]) for e in audit] == [
            ("alice", "publish", "snap"),
            ("bob", "approve", "snap"),
            ("alice", "publish", "lg"),
        ]
    finally:
        worker.close()


def test_a_spec_published_past_the_rule_is_refused_until_approved(
    client: redis.Redis, prefix: str, worker: Any
) -> None:
    """A snapshot published straight to the workers (the library, no pending step) is
    refused, its status saying it awaits approval; approve() by another key publishes it
    again, signed twice, and it applies."""
    sub, manager = worker
    alice = SpecStore(client, prefix, "k1:alpha", who="alice")
    alice.put("s", spec("snapshot"))
    assert wait_for(lambda: (status_of(client, prefix, "s") or {}).get("err"))
    assert "awaiting approval" in status_of(client, prefix, "s")["err"]  # type: ignore[index]
    approved = approve(SpecStore(client, prefix, "k2:beta", who="bob"), "s")
    assert approved.publisher == "" and approved.publisher_keys == ["k1"]
    assert wait_for(lambda: "s" in manager.specs)
    assert wait_for(lambda: (status_of(client, prefix, "s") or {}).get("err", "x") is None)
