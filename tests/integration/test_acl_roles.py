"""The least-privilege ACLs of docs/security/acl.md on a real server: a worker, two operators
(the two-person rule), an auditor and `coordinator serve` each do their work under their
user and nothing else; a worker refused a command names it and runs on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from coordinator.embedded import RedisServer
from diagnose_redis.protocol import Keys
from support.cli import COORDINATOR
from support.fleet import Worker
from support.waiting import wait_for

ACL_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security" / "acl.md"
PREFIX = "diagnose"
TARGET = "fleet_worker.work"
WORKER_KEYS = "k1:alpha,k2:beta"


def documented_users() -> dict[str, list[str]]:
    """Return the rules of each `ACL SETUSER NAME on >PASSWORD ...` line of the page."""
    found = re.findall(r"^ACL SETUSER (\S+) on >PASSWORD (.+)$", ACL_PAGE.read_text(), re.M)
    users = {name: rules.split() for name, rules in found}
    assert set(users) == {"diagnose-worker", "alice", "diagnose-auditor", "diagnose-serve"}
    return users


@pytest.fixture
def acl_server(private_redis: RedisServer) -> Iterator[RedisServer]:
    """A private server with the page's users (password pw), bob as a second operator, and
    `nooutput`, a worker whose ACL lacks XADD."""
    admin = redis.Redis.from_url(private_redis.url)
    version = str(admin.info("server").get("redis_version", "7"))
    if int(version.split(".")[0]) < 7:
        admin.close()
        pytest.fail(
            f"the server is Redis {version}: the documented ACLs' %R~ and %W~ key patterns "
            "need Redis 7.0+ or Valkey (the embedded one that `make test` installs has them)"
        )
    admin.config_set("notify-keyspace-events", "Ex")
    users = documented_users()
    for name, rules in users.items():
        admin.execute_command("ACL", "SETUSER", name, "on", ">pw", *rules)
    admin.execute_command("ACL", "SETUSER", "bob", "on", ">pw", *users["alice"])
    lacking = [rule for rule in users["diagnose-worker"] if rule != "+xadd"]
    admin.execute_command("ACL", "SETUSER", "nooutput", "on", ">pw", *lacking)
    admin.close()
    yield private_redis


def as_user(url: str, user: str) -> str:
    """Return url logged in as user (password pw)."""
    return url.replace("redis://", f"redis://{user}:pw@")


def run(url: str, user: str, *args: str, secret: str = "") -> subprocess.CompletedProcess[str]:
    """Run the coordinator as Redis user user (also DIAGNOSE_USER), signing with secret."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": as_user(url, user), "DIAGNOSE_PREFIX": PREFIX}
    env.pop("DIAGNOSE_REQUIRE_APPROVAL", None)
    env.update(DIAGNOSE_USER=user, DIAGNOSE_SECRET=secret)
    return subprocess.run([COORDINATOR, *args], env=env, capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Check a command exited 0 with no error line; return its stdout."""
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_every_role_does_its_work_under_its_acl(
    acl_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the page's ACLs a worker applies what alice publishes and what bob approves,
    its output reaches the stream, the auditor reads everything, and the audit names each
    person with their Redis user; no role is refused anything."""
    url = acl_server.url
    monkeypatch.setenv("DIAGNOSE_REQUIRE_APPROVAL", "snapshot")
    worker = Worker(as_user(url, "diagnose-worker"), PREFIX, "--secret", WORKER_KEYS,
                    "--process-id", "w-1")  # fmt: skip
    monkeypatch.delenv("DIAGNOSE_REQUIRE_APPROVAL")
    try:
        ok(run(url, "alice", "publish", "lg", "-t", TARGET, "--value", "x * 10", "--wait",
               secret="k1:alpha"))  # fmt: skip
        assert worker.call(2) == ["Probe (lg) = 20"]
        held = ok(run(url, "alice", "publish", "sn", "-t", TARGET, "--type", "snapshot",
                      secret="k1:alpha"))  # fmt: skip
        assert held == "sn\n"
        assert "pending" in ok(run(url, "diagnose-auditor", "list"))
        ok(run(url, "bob", "approve", "sn", "--wait", secret="k2:beta"))
        assert any(line.startswith("Snapshot (sn)") for line in worker.call(3))
        # Fleet statistics: the worker merges them with a script, which the ACL binds too.
        ok(run(url, "alice", "publish", "st", "-t", TARGET, "--type", "stats", "--value", "x",
               "--wait", secret="k1:alpha"))  # fmt: skip
        worker.call(4)

        def counted() -> bool:
            shown = run(url, "diagnose-auditor", "stats", "st", "--json")
            groups = json.loads(shown.stdout)["groups"] if shown.returncode == 0 else {}
            return bool(groups.get("all", {}).get("count"))

        found = wait_for(counted, 10, 0.2)
        shown = run(url, "diagnose-auditor", "stats", "st", "--json")
        assert found, (shown.stdout, shown.stderr, worker.close().splitlines())
        tail = ok(run(url, "diagnose-auditor", "tail", "lg", "--json"))
        assert any(json.loads(line)["value"] == "20" for line in tail.splitlines())
        for args in (["status"], ["status", "sn"], ["processes"]):
            assert "w-1" in ok(run(url, "diagnose-auditor", *args)), args
        summary = ok(run(url, "diagnose-auditor", "status", "--summary")).splitlines()
        assert summary[1].split()[:3] == ["lg", "1", "1"]
        ok(run(url, "alice", "remove", "lg", "sn", "st", secret="k1:alpha"))
        assert wait_for(lambda: worker.call(1) == [], 10, 0.1)
        audit = json.loads(ok(run(url, "diagnose-auditor", "audit", "--json")))
        assert [(e["who"], e["action"], e["spec"]) for e in audit] == [
            ("alice as alice", "publish", "lg"),
            ("alice as alice", "publish", "sn"),
            ("bob as bob", "approve", "sn"),
            ("alice as alice", "publish", "st"),
            ("alice as alice", "remove", "lg"),
            ("alice as alice", "remove", "sn"),
            ("alice as alice", "remove", "st"),
        ]
        raw = redis.Redis.from_url(url).hget(Keys(PREFIX).status("w-1"), "_process")
        info = json.loads(cast(bytes, raw))
        assert "refused" not in info and info["keys"] == ["k1", "k2"]
    finally:
        stderr = worker.close()
    assert "diagnose_redis (" not in stderr, stderr


@pytest.mark.parametrize(
    "command",
    [
        ["SET", "diagnose:spec:x", "forged"],
        ["DEL", "diagnose:spec:p"],
        ["SADD", "diagnose:ids", "x"],
        ["SET", "diagnose:version", "99"],
        ["PUBLISH", "diagnose:events", "forged"],
        ["HSET", "diagnose:pending:x", "spec", "forged"],
        ["XADD", "diagnose:audit", "*", "who", "me"],
        ["XRANGE", "diagnose:output", "-", "+"],
        ["HGETALL", "diagnose:pending:x"],
        ["GET", "other:spec:x"],
        ["KEYS", "*"],
        ["FLUSHDB"],
        ["CONFIG", "GET", "requirepass"],
        ["SUBSCRIBE", "other:events"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_worker_can_do_nothing_else(acl_server: RedisServer, command: list[str]) -> None:
    """The worker's user is refused writing specs, the index, the version, events, pending
    specs and the audit, reading the output stream, other prefixes and the server."""
    client = redis.Redis.from_url(as_user(acl_server.url, "diagnose-worker"))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            if command[0] == "SUBSCRIBE":
                pubsub = client.pubsub()
                pubsub.subscribe(command[1])
                pubsub.get_message(timeout=2)
            else:
                client.execute_command(*command)
    finally:
        client.close()


@pytest.mark.parametrize(
    "args",
    [
        ["publish", "p", "-t", TARGET, "--value", "x"],
        ["remove", "p"],
        ["approve", "p"],
    ],
)
def test_the_auditor_cannot_change_anything(acl_server: RedisServer, args: list[str]) -> None:
    """publish, remove and approve by the auditor exit 1 with one line naming the refusal."""
    result = run(acl_server.url, "diagnose-auditor", *args, secret="k2:beta")
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "denies this user" in lines[0] and "no permissions" in lines[0]


def test_serve_turns_expired_specs_into_audited_removals(acl_server: RedisServer) -> None:
    """coordinator serve under its user removes an expired spec, audited as expire."""
    url = acl_server.url
    env = {**os.environ, "DIAGNOSE_REDIS_URL": as_user(url, "diagnose-serve")}
    env.update(DIAGNOSE_PREFIX=PREFIX, DIAGNOSE_USER="serve")
    serve = subprocess.Popen(
        [COORDINATOR, "serve", "--sweep-interval", "0.2"], env=env, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert serve.stderr is not None and "serving" in serve.stderr.readline()
        ok(run(url, "alice", "publish", "short", "-t", TARGET, "--value", "x",
               "--lifespan", "0.01"))  # fmt: skip
        client = redis.Redis.from_url(url)
        try:
            assert wait_for(lambda: not client.sismember(Keys(PREFIX).ids, "short"), 15, 0.05)
        finally:
            client.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=10)
    assert serve.returncode == 0, err
    audit = json.loads(ok(run(url, "diagnose-auditor", "audit", "--json")))
    assert [(e["who"], e["action"]) for e in audit] == [
        ("alice as alice", "publish"),
        ("serve as diagnose-serve", "expire"),
    ]


def test_a_worker_refused_a_command_names_it_and_runs_on(acl_server: RedisServer) -> None:
    """A worker whose ACL lacks XADD applies probes all the same, and says in one line and
    in its _process field that XADD is refused, and what that costs."""
    url = acl_server.url
    worker = Worker(as_user(url, "nooutput"), PREFIX, "--process-id", "w-2")
    try:
        ok(run(url, "alice", "publish", "lg", "-t", TARGET, "--value", "x", "--wait"))
        assert worker.call(4) == ["Probe (lg) = 4"]
        client = redis.Redis.from_url(url)
        try:

            def refused() -> dict[str, str]:
                raw = client.hget(Keys(PREFIX).status("w-2"), "_process")
                return json.loads(raw).get("refused", {}) if raw else {}

            assert wait_for(lambda: "XADD" in refused(), 10, 0.05), refused()
        finally:
            client.close()
        assert worker.call(5) == ["Probe (lg) = 5"]
    finally:
        stderr = worker.close()
    lines = [line for line in stderr.splitlines() if line.startswith("diagnose_redis (")]
    assert len(lines) == 1, stderr
    assert "refuses this user XADD" in lines[0] and "'xadd'" in lines[0]
    assert "probes apply, but their output does not reach Redis" in lines[0]
    assert "pw@" not in lines[0]
