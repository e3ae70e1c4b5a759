"""Tests of the coordinator's --wait classification across time zones."""

from __future__ import annotations

import datetime as dt

from coordinator.fleet.wait import report_state, same_time

LM = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
EAST = dt.timezone(dt.timedelta(hours=5))


def test_same_instant_in_another_zone_is_the_same_time() -> None:
    """An aware value in another zone is converted to UTC, not relabelled."""
    assert same_time(LM, LM.astimezone(EAST))
    assert same_time(LM.replace(tzinfo=None), LM.astimezone(EAST))
    assert not same_time(LM, LM.replace(tzinfo=EAST))


def test_report_in_another_zone_is_applied_not_stale() -> None:
    """A report whose lm is the spec's instant written in another zone counts as applied."""
    assert report_state({"lm": LM.astimezone(EAST), "err": None}, LM) == "applied"
    earlier = (LM - dt.timedelta(seconds=1)).astimezone(EAST)
    assert report_state({"lm": earlier, "err": None}, LM) == "stale"
