"""The command line in-process where it meets the world: a real Redis that refuses it (exit
1, saying why), and completion scripts (click asks the shell for its version)."""

from __future__ import annotations

import pytest
import redis

from coordinator.embedded import RedisServer
from support.cli import assert_one_line_error, run


@pytest.fixture
def guarded_redis(private_redis: RedisServer) -> str:
    """A private Redis with a password and a read-only ACL user `reader` (password `pw`)."""
    client = redis.Redis.from_url(private_redis.url)
    client.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@read"])
    client.config_set("requirepass", "sesame")
    client.close()
    return private_redis.url


@pytest.mark.parametrize(
    ("credentials", "args", "words"),
    [
        ("", ["list"], ["requires a password", "redis://[USER]:PASSWORD@"]),
        (":wrong@", ["list"], ["refused the user name and password", ":***@"]),
        ("reader:pw@", ["remove", "x"], ["denies this user", "Security"]),
    ],
    ids=["no-password", "wrong-password", "acl"],
)
def test_redis_refusals_are_explained_with_exit_1(
    guarded_redis: str, credentials: str, args: list[str], words: list[str]
) -> None:
    """No password, a wrong one, or an ACL denial each exit 1 with a line saying which."""
    url = guarded_redis.replace("redis://", f"redis://{credentials}")
    code, stdout, stderr = run("--redis-url", url, *args)
    assert (code, stdout) == (1, "")
    assert "wrong@" not in stderr
    assert_one_line_error(stderr, *words)


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef coordinator"), ("fish", "complete")],
)
def test_completion_prints_the_shell_script(shell: str, marker: str) -> None:
    """`coordinator completion SHELL` prints click's completion script for that shell."""
    code, stdout, _ = run("completion", shell)
    assert code == 0
    assert marker in stdout
    assert "_COORDINATOR_COMPLETE" in stdout
