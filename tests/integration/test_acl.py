"""A fleet under the README's Redis ACL: everything works, refusals are told, hosts run on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from coordinator.embedded import RedisServer
from support.acl import readme_acl_rules
from support.cli import coordinator, ok
from support.fleet import WORKER
from support.secure_redis import exercise_fleet
from support.waiting import wait_for


@pytest.fixture
def acl_redis(private_redis: RedisServer) -> str:
    """A private Redis with the README's user `diagnose` (password `pw`) and a read-only
    user `viewer` (password `pw`) on the same keys; return the server's URL."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "diagnose", "on", ">pw", *readme_acl_rules())
    admin.execute_command(
        "ACL",
        "SETUSER",
        "viewer",
        "on",
        ">pw",
        "resetchannels",
        "~diagnose:*",
        "&diagnose:*",
        "+@read",
        "+@pubsub",
        "+ping",
        "+info",
    )
    admin.close()
    return private_redis.url


def as_user(url: str, credentials: str) -> str:
    """Return url with user:password in it."""
    return url.replace("redis://", f"redis://{credentials}@")


def test_the_readme_acl_runs_a_worker_every_command_and_serve(acl_redis: str) -> None:
    """Under the README's ACL line a worker applies, and publish (--wait), status, list,
    processes, remove and serve all work end to end, with no warning anywhere."""
    exercise_fleet(
        as_user(acl_redis, "diagnose:pw"), "diagnose", serve_says="cannot read notify-keyspace"
    )


def test_a_user_without_write_access_exits_1_with_one_line(acl_redis: str) -> None:
    """A user who may only read the fleet's keys gets exit 1 and one line naming the refusal
    from publish and remove, while reading commands work."""
    url = as_user(acl_redis, "viewer:pw")
    assert ok(coordinator(url, "diagnose", "list")).strip() == "No specs."
    for args in (["publish", "p", "-t", "fleet_worker.work", "--value", "x"], ["remove", "p"]):
        result = coordinator(url, "diagnose", *args)
        assert (result.returncode, result.stdout) == (1, ""), (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
        assert "denies this user" in lines[0] and "Traceback" not in result.stderr


def test_a_worker_with_a_wrong_password_runs_on_and_says_why(
    acl_redis: str, tmp_path: Path
) -> None:
    """A worker whose URL has a wrong password keeps serving its calls, unprobed, and its
    stderr says in one line that Redis refused the login, without the password."""
    url = as_user(acl_redis, "diagnose:hunter2")
    stderr = tmp_path / "stderr"
    with (
        open(stderr, "w") as err,
        subprocess.Popen(
            [sys.executable, str(WORKER), "--url", url, "--prefix", "diagnose"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None and proc.stdin is not None
        try:
            assert proc.stdout.readline().startswith("ready")
            said = wait_for(lambda: "refused the login" in stderr.read_text(), 10)
            assert said, stderr.read_text()
            for x in (1, 2, 3):
                proc.stdin.write(f"call {x}\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == f"called {x * 2}\n"
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = stderr.read_text().splitlines()
    assert len(lines) == 1, lines
    assert "diagnose_redis (" in lines[0] and "): Redis at redis://diagnose:***@" in lines[0]
    assert "WRONGPASS" in lines[0] or "invalid username-password" in lines[0]
    assert "hunter2" not in lines[0]
