"""The coordinator's formatting helpers: durations, times, JSON and redacted URLs."""

from __future__ import annotations

import datetime as _dt
import json

import pytest

from coordinator._context import redact
from coordinator.fleet.wait import report_state
from coordinator.view.output import format_duration, format_time, to_jsonable

LM = _dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=_dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "never"), (-3, "0s"), (0.4, "0s"), (45, "45s"), (192, "3m12s"), (7500, "2h05m")],
)
def test_format_duration_reads_like_kubectl(seconds: float | None, text: str) -> None:
    """Durations print as 45s, 3m12s, 2h05m, and no lifespan as 'never'."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [LM, LM.replace(tzinfo=None), LM.timestamp()])
def test_format_time_prints_utc_to_the_second(value: _dt.datetime | float) -> None:
    """Aware, naive (taken as UTC) and unix times print as the same ISO-8601 UTC text."""
    assert format_time(value) == "2026-01-02T03:04:05Z"


def test_to_jsonable_turns_datetimes_and_bytes_into_text() -> None:
    """Nested datetimes become ISO-8601 with a zone, bytes become text, tuples lists."""
    value = {"a": [LM.replace(tzinfo=None), b"x"], 1: (2,)}
    assert json.loads(json.dumps(to_jsonable(value))) == {
        "a": ["2026-01-02T03:04:05.678000+00:00", "x"],
        "1": [2],
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("rediss://:pw@h/0", "rediss://:***@h/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    """A password in a Redis URL is replaced by ***."""
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("report", "state"),
    [
        (None, "pending"),
        ({"lm": LM, "err": None}, "applied"),
        ({"lm": LM + _dt.timedelta(microseconds=300), "err": None}, "applied"),
        ({"lm": LM, "err": "ProbeError: no"}, "error"),
        ({"lm": LM - _dt.timedelta(seconds=1), "err": None}, "stale"),
        ({"lm": LM - _dt.timedelta(seconds=1), "err": "old error"}, "stale"),
    ],
)
def test_report_state_classifies_a_process_report(report: object, state: str) -> None:
    """A report is applied, error, stale (older lastmodified) or pending (none)."""
    assert report_state(report, LM) == state
