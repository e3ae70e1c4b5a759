"""The audit stream P:audit and `coordinator audit`: who published, removed, rolled out and
let expire which spec, written in the same transaction as the change, capped."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from diagnose_redis.protocol import AUDIT_FIELDS, Keys
from diagnose_redis.publisher import actor, audit, read_audit
from support.cli import COORDINATOR
from support.fleet import Worker
from support.waiting import wait_for

TARGET = "fleet_worker.work"


def run(
    url: str, prefix: str, *args: str, user: str | None = "alice"
) -> subprocess.CompletedProcess[str]:
    """Run the coordinator as user (DIAGNOSE_USER; None: unset)."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    for name in ("DIAGNOSE_SECRET", "DIAGNOSE_USER", "DIAGNOSE_REQUIRE_APPROVAL"):
        env.pop(name, None)
    if user is not None:
        env["DIAGNOSE_USER"] = user
    return subprocess.run([COORDINATOR, *args], env=env, capture_output=True, text=True, timeout=60)


def entries(url: str, prefix: str) -> list[dict[str, str]]:
    """Read P:audit as redis-cli XRANGE P:audit - + would."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        found: Any = client.xrange(Keys(prefix).audit, "-", "+")
        return [fields for _, fields in found]
    finally:
        client.close()


def test_publish_and_remove_are_in_the_audit_stream_with_who(redis_url: str, prefix: str) -> None:
    """publish and remove by a named user each add an entry with at, who, action, spec and
    detail, plain strings that XRANGE shows; the entry of a publish says what it was."""
    assert run(redis_url, prefix, "publish", "p1", "-t", TARGET, "--value", "x").returncode == 0
    assert run(redis_url, prefix, "remove", "p1", user="bob").returncode == 0
    found = entries(redis_url, prefix)
    assert [(e["who"], e["action"], e["spec"]) for e in found] == [
        ("alice", "publish", "p1"),
        ("bob", "remove", "p1"),
    ]
    assert all(set(e) == set(AUDIT_FIELDS) for e in found)
    assert found[0]["detail"] == f"log on {TARGET}, lifespan 10 min"
    assert found[0]["at"].endswith("+00:00") and found[0]["at"] < found[1]["at"]


def test_coordinator_audit_shows_them_as_a_table_and_as_json(redis_url: str, prefix: str) -> None:
    """`coordinator audit --json` is a list of the entries, oldest first; -n keeps the last
    N, --spec one spec's; the table has a row per entry."""
    for spec_id in ("a", "b"):
        run(redis_url, prefix, "publish", spec_id, "-t", TARGET, "--value", "x")
    run(redis_url, prefix, "remove", "a", user="bob")
    listed = json.loads(run(redis_url, prefix, "audit", "--json").stdout)
    assert [(e["who"], e["action"], e["spec"]) for e in listed] == [
        ("alice", "publish", "a"),
        ("alice", "publish", "b"),
        ("bob", "remove", "a"),
    ]
    assert set(listed[0]) == {"id", *AUDIT_FIELDS}
    last = json.loads(run(redis_url, prefix, "audit", "-n", "1", "--json").stdout)
    assert [e["action"] for e in last] == ["remove"]
    only_a = json.loads(run(redis_url, prefix, "--json", "audit", "--spec", "a").stdout)
    assert [e["action"] for e in only_a] == ["publish", "remove"]
    table = run(redis_url, prefix, "audit").stdout.splitlines()
    assert table[0].split() == ["TIME", "WHO", "ACTION", "SPEC", "DETAIL"] and len(table) == 4
    assert table[3].split()[1:4] == ["bob", "remove", "a"]
    empty = run(redis_url, prefix + "-none", "audit")
    assert (empty.returncode, empty.stdout.strip()) == (0, "No audit entries.")


def test_who_is_the_os_user_at_the_host_without_diagnose_user(redis_url: str, prefix: str) -> None:
    """Without DIAGNOSE_USER an entry names the OS user @ host (the ACL user `default` is
    not named)."""
    run(redis_url, prefix, "publish", "p", "-t", TARGET, "--value", "x", user=None)
    assert entries(redis_url, prefix)[0]["who"] == f"{getpass.getuser()}@{socket.gethostname()}"


@pytest.fixture
def acl_server(private_redis: RedisServer) -> Iterator[RedisServer]:
    """A private Redis with user `ops` (may do anything), `blind` (anything but ACL
    WHOAMI) and `noaudit` (anything but XADD); all with password pw."""
    admin = redis.Redis.from_url(private_redis.url)
    everything = ["on", ">pw", "~*", "&*", "+@all"]
    admin.execute_command("ACL", "SETUSER", "ops", *everything)
    admin.execute_command("ACL", "SETUSER", "blind", *everything, "-acl|whoami")
    admin.execute_command("ACL", "SETUSER", "noaudit", *everything, "-xadd")
    admin.close()
    yield private_redis


def as_user(url: str, user: str) -> str:
    """Return url logged in as user (password pw)."""
    return url.replace("redis://", f"redis://{user}:pw@")


@pytest.mark.parametrize("user", ["ops", "blind"])
def test_who_names_the_redis_acl_user_when_not_default(
    acl_server: RedisServer, prefix: str, user: str
) -> None:
    """An entry's who ends with ` as USER` for an ACL user other than default, found with
    ACL WHOAMI, or from the URL where the ACL refuses WHOAMI."""
    url = as_user(acl_server.url, user)
    assert run(url, prefix, "publish", "p", "-t", TARGET, "--value", "x").returncode == 0
    assert entries(url, prefix)[0]["who"] == f"alice as {user}"


def test_a_change_whose_audit_entry_is_refused_does_not_land(
    acl_server: RedisServer, prefix: str
) -> None:
    """Where the entry cannot be written (the ACL refuses XADD), the change is not made
    either: publish exits 1 with one line, and no spec is stored or published."""
    url = as_user(acl_server.url, "noaudit")
    result = run(url, prefix, "publish", "p", "-t", TARGET, "--value", "x")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    client = redis.Redis.from_url(acl_server.url)
    try:
        keys = Keys(prefix)
        assert not client.exists(keys.spec("p"), keys.ids, keys.version, keys.audit)
    finally:
        client.close()


def test_the_stream_is_capped(redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are added with MAXLEN ~: with a cap of 10, 300 changes leave far fewer."""
    monkeypatch.setattr(audit, "AUDIT_MAXLEN", 10)
    client = redis.Redis.from_url(redis_url)
    try:
        store = SpecStore(client, prefix, who="t")
        spec = {"target": TARGET, "instrument": {"type": "log", "name": "n", "value": "x"}}
        for n in range(100):
            store.put_many({f"s{n}": spec, f"t{n}": spec, f"u{n}": spec})
        assert client.xlen(store.keys.audit) <= 200
    finally:
        client.close()


def test_canary_steps_and_expiry_are_audited(redis_url: str, prefix: str) -> None:
    """A canary rollout writes its canary and widening steps; a spec whose lifespan ran out
    is written as expired by whoever swept it (coordinator serve)."""
    worker = Worker(redis_url, prefix, "--process-id", "w-1")
    try:
        rolled = run(redis_url, prefix, "publish", "c", "-t", TARGET, "--value", "x",
                     "--canary", "1", "--canary-for", "0")  # fmt: skip
        assert rolled.returncode == 0, rolled.stderr
    finally:
        worker.close()
    client = redis.Redis.from_url(redis_url)
    try:
        serve = SpecStore(client, prefix, who="serve@host")
        instrument = {"type": "log", "name": "n", "value": "x"}
        serve.put("short", {"target": TARGET, "instrument": instrument, "lifespan": 0.002})
        assert wait_for(lambda: serve.sweep_expired() == ["short"], 5, 0.02)
        found = read_audit(client, serve.keys, 10)
    finally:
        client.close()
    steps = [(e["who"], e["action"], e["spec"]) for e in found]
    assert steps == [
        ("alice", "canary", "c"),
        ("alice", "canary-widen", "c"),
        ("serve@host", "publish", "short"),
        ("serve@host", "expire", "short"),
    ]
    assert "select process=['w-1']" in found[0]["detail"]


def test_actor_reads_diagnose_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIAGNOSE_USER, trimmed and on one line, is who acts (no client: no ACL user)."""
    monkeypatch.setenv("DIAGNOSE_USER", "  carol \n (on call) ")
    assert actor() == "carol (on call)"
