"""The `coordinator` program as the tests run it: installed, as a process of its own, or
in-process through click's runner."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from click.testing import CliRunner

from coordinator.cli import cli
from diagnose_redis import Keys
from diagnose_redis.protocol import PROCESS_FIELD, encode_status_field

__all__ = (
    "CLOSED_URL",
    "COORDINATOR",
    "Cli",
    "assert_clean_error",
    "assert_one_line_error",
    "coordinator",
    "ok",
    "run",
    "tool",
)

# A URL where nothing listens: a connection to it is refused at once.
CLOSED_URL = "redis://127.0.0.1:1/0"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Return the path of a console script installed next to this Python; fail if absent."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}: `make test` installs .[test]"
    return str(path)


COORDINATOR = str(BIN / "coordinator")


def coordinator(
    redis_url: str, prefix: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `coordinator` with redis_url and prefix in its environment (and no
    secret or process id of the test's environment); env adds to it."""
    full_env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix}
    for name in ("DIAGNOSE_SECRET", "DIAGNOSE_PROCESS_ID"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(
        [tool("coordinator"), *args], env=full_env, capture_output=True, text=True, timeout=40
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Check that a coordinator command exited 0 without a word on errors; return stdout."""
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Check the exit code, one Error line naming the words, and no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert_one_line_error(result.stderr, *words)


def assert_one_line_error(stderr: str, *words: str) -> None:
    """Check stderr holds one error line mentioning words, and no traceback."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], stderr


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `coordinator ARGS` in-process and return its exit code, stdout and stderr."""
    result = CliRunner().invoke(
        cli, list(args), env=env, catch_exceptions=False, prog_name="coordinator"
    )
    return result.exit_code, result.stdout, result.stderr


#: An error text longer than a table cell (the tables cut it, --wide shows it whole).
LONG_ERROR = (
    "TargetNotFound: shop.pricing has no attribute or submodule 'nope'; "
    "the module defines total, unit_price and discount_for"
)


class Cli:
    """Run the CLI in-process against one Redis and prefix, at a chosen width."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.base = ["--redis-url", redis_url, "--prefix", prefix]
        self.client = redis.Redis.from_url(redis_url)
        self.keys = Keys(prefix)

    def __call__(self, *args: str, columns: int = 80) -> tuple[int, str, str]:
        """Run `coordinator ARGS` and return its exit code, stdout and stderr."""
        return run(*self.base, *args, env={"COLUMNS": str(columns)})

    def report(self, process: str, spec_id: str, err: str | None, *, age: float = 0.0) -> None:
        """Make a fake process that heartbeat age seconds ago report on spec_id."""
        stored = json.loads(self("--json", "list")[1])["specs"][spec_id]
        lm = dt.datetime.fromisoformat(stored["lastmodified"])
        key = self.keys.status(process)
        self.client.hset(key, spec_id, encode_status_field(lm, err, dt.datetime.now(dt.UTC)))
        self.client.hset(key, PROCESS_FIELD, json.dumps({"host": "h", "pid": 1}))
        self.client.zadd(self.keys.processes, {process: time.time() - age})

    def close(self) -> None:
        """Close the client the reports go through."""
        self.client.close()
