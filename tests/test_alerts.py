"""Tests of the lines that tell a person the subscriber cannot work."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import redis

from coordinator._embedded import RedisServer
from diagnose_redis import BadURL
from diagnose_redis._status.alerts import AUTH, ERROR, UNREACHABLE, URL, Alerts, classify
from probe_targets.support import wait_for


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alerts(clock: Clock) -> tuple[Alerts, list[str]]:
    """Return Alerts writing into a list, on the given clock."""
    lines: list[str] = []
    return Alerts("redis://u:pw@h:1/0", "web-1", clock=clock, write=lines.append), lines


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (BadURL("no scheme"), URL),
        (redis.AuthenticationError("invalid password"), AUTH),
        (redis.exceptions.NoPermissionError("NOPERM no permissions"), AUTH),
        (redis.ResponseError("WRONGPASS invalid username-password pair"), AUTH),
        (redis.ConnectionError("Connection refused"), UNREACHABLE),
        (TimeoutError("no subscribe confirmation"), UNREACHABLE),
        (redis.ResponseError("OOM command not allowed"), ERROR),
    ],
)
def test_failures_are_classified(exc: Exception, kind: str) -> None:
    """Each failure falls in one kind: url, auth, unreachable or error."""
    assert classify(exc) == kind


def test_one_line_per_kind_per_minute_with_password_masked() -> None:
    """A refused login shows one line at once, none again within a minute, one after."""
    clock = Clock()
    alert, lines = alerts(clock)
    for _ in range(5):
        alert.failed(redis.AuthenticationError("invalid password"))
        clock.now += 10
    assert len(lines) == 1
    assert "web-1" in lines[0] and "redis://u:***@h:1/0" in lines[0] and "pw@" not in lines[0]
    assert "\n" not in lines[0]
    clock.now += 20
    alert.failed(redis.AuthenticationError("invalid password"))
    assert len(lines) == 2


def test_unreachable_waits_out_a_short_outage() -> None:
    """A connection lost for less than the grace time shows nothing; a longer one, one line."""
    clock = Clock()
    alert, lines = alerts(clock)
    alert.failed(redis.ConnectionError("refused"))
    clock.now += 2
    alert.failed(redis.ConnectionError("refused"))
    assert lines == []
    alert.recovered()
    assert lines == []
    alert.failed(redis.ConnectionError("refused"))
    clock.now += 6
    alert.failed(redis.ConnectionError("refused"))
    assert len(lines) == 1 and "cannot reach Redis" in lines[0]


def test_recovery_is_told_once_after_a_problem() -> None:
    """After a line about a problem, one line says it works again; only once."""
    clock = Clock()
    alert, lines = alerts(clock)
    alert.failed(redis.AuthenticationError("invalid password"))
    alert.recovered()
    alert.recovered()
    assert len(lines) == 2 and "again" in lines[1]


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter without logging configured."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env
    )


def test_malformed_url_prints_one_line_and_the_host_runs_on() -> None:
    """start() with a typo in the URL writes one line to stderr, masked, and raises nothing."""
    code = (
        "import diagnose_redis\n"
        "s = diagnose_redis.start('htp://user:hunter2@127.0.0.1:6379/0', process_id='web-1')\n"
        "print('host runs', s.running)\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout == "host runs False\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "web-1" in lines[0] and "invalid Redis URL" in lines[0]
    assert "hunter2" not in result.stderr and "***" in lines[0]


def test_malformed_url_goes_through_logging_when_configured() -> None:
    """With logging configured by the application, the line is a WARNING record."""
    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(name)s %(message)s')\n"
        "import diagnose_redis\n"
        "diagnose_redis.start('htp://127.0.0.1:6379/0', process_id='web-1')\n"
    )
    result = run_python(code)
    assert result.stderr == ""
    assert result.stdout.startswith("WARNING diagnose_redis diagnose_redis (web-1): invalid")


def test_refused_password_is_told_and_so_is_recovery(private_redis: RedisServer) -> None:
    """A server refusing the password gets one line; when it accepts, one line says so."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "sesame")
    admin.close()
    code = (
        "import sys, diagnose_redis\n"
        f"s = diagnose_redis.start({private_redis.url!r}, process_id='web-1', prefix='a')\n"
        "print('started', flush=True)\n"
        "sys.stdin.readline()\n"
        "print('connected', s.connected.wait(10), flush=True)\n"
        "s.stop()\n"
    )
    err: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None and proc.stdin is not None and proc.stdout is not None
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: err.extend(iter(stderr.readline, "")))
        reader.start()
        try:
            assert wait_for(lambda: len(err) >= 1, 10), "no line about the refused login"
            assert "refused the login" in err[0]
            admin = redis.Redis.from_url(private_redis.url, password="sesame")
            admin.config_set("requirepass", "")
            admin.close()
            proc.stdin.write("go\n")
            proc.stdin.close()
            out = proc.stdout.read()
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(5)
    assert "connected True" in out
    assert len(err) == 2 and "again" in err[1], err
