"""publish --canary: what counts as trouble in a canary's status field."""

from __future__ import annotations

import pytest

from coordinator.commands.canary import field_trouble


@pytest.mark.parametrize(
    ("raw", "trouble"),
    [
        ('{"lm": "x", "err": null, "at": "y"}', None),
        ('{"lm": "x", "err": null, "fired": 9, "dropped": 0, "errors": 0}', None),
        ('{"lm": "x", "err": "budget exceeded"}', "reported an error: budget exceeded"),
        ('{"lm": "x", "err": null, "errors": 2}', "reported 2 runtime errors"),
        ('{"lm": "x", "err": null, "dropped": 5}', "reported 5 events dropped over its rate"),
        (None, "no longer reports its status"),
        ("nonsense", "unreadable"),
    ],
)
def test_field_trouble_reads_errors_and_counters(raw: str | None, trouble: str | None) -> None:
    """A status field is trouble when it has an error, runtime errors or dropped events."""
    found = field_trouble(raw)
    assert (found is None) if trouble is None else (found is not None and trouble in found)
