"""Tests of the lines that tell a person the subscriber cannot work."""

from __future__ import annotations

import pytest
import redis

from diagnose_redis import BadURL
from diagnose_redis._status.alerts import AUTH, ERROR, UNREACHABLE, URL, Alerts, classify


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
