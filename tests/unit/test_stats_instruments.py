"""The stats and distinct instruments in one process: groups, invalid values, the bounded
queues, canonical forms, and their aggregates' takes (no Redis)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from diagnose import ProbeManager
from diagnose._output.redaction import REDACTED
from diagnose.aggregates import AGGREGATES
from diagnose.instruments import DistinctInstrument, StatsInstrument
from diagnose.instruments import _tallies as tallies
from diagnose.instruments._groups import GROUP_CHARS, MAX_GROUPS, OTHER, SPILL
from diagnose.sketch import INVALID

TARGET = f"{__name__}.checkout"


def checkout(amount: Any, tier: Any = "gold", password: str = "hunter2") -> Any:
    """Return amount: the function these tests probe."""
    return amount


def spec(itype: str, value: str, **custom: Any) -> dict[str, Any]:
    """Return a spec of this type on checkout."""
    return {
        "target": TARGET,
        "instrument": {"type": itype, "name": "s", "value": value, "custom": custom},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
    }


class Applied:
    """A manager of the test's own whose specs are applied; removed at the end."""

    def __init__(self) -> None:
        self.mgr = ProbeManager(process_id="test")

    def put(self, spec_id: str, body: dict[str, Any]) -> Any:
        """Apply a spec and return its instrument."""
        self.mgr.specs[spec_id] = body
        self.mgr.apply()
        assert body["applied"]["test"]["err"] is None, body["applied"]
        from diagnose.probes import active_probes

        return active_probes[TARGET].instruments[f"{self.mgr.short_id}:{spec_id}"]

    def close(self) -> None:
        self.mgr.specs.clear()
        self.mgr.apply()
        AGGREGATES.drain()


@pytest.fixture
def applied() -> Iterator[Applied]:
    """Specs applied by a manager of the test's own, all removed at its end."""
    manager = Applied()
    try:
        yield manager
    finally:
        manager.close()


def test_stats_count_numbers_per_group_and_the_rest_as_invalid(applied: Applied) -> None:
    """Numbers add up in their group's sketch; anything else is counted as invalid, and the
    target's return value is unchanged either way."""
    instrument = applied.put("s", spec("stats", "amount", by="tier"))
    assert isinstance(instrument, StatsInstrument)
    for amount, tier in [(1, "gold"), (2.5, "gold"), (-3, "silver"), (0, "silver")]:
        assert checkout(amount, tier) == amount
    odd: list[Any] = [None, "12", True, float("nan"), [1], float("inf")]
    for value in odd:
        assert checkout(value, "odd") is value
    summary = instrument.summary()
    assert sorted(summary) == ["gold", "odd", "silver"]
    gold, silver, bad = summary["gold"], summary["silver"], summary["odd"]
    assert (gold.count, gold.low, gold.high, gold.total) == (2, 1, 2.5, 3.5)
    assert (silver.count, silver.zero, silver.low) == (2, 1, -3)
    assert (bad.count, bad.invalid) == (0, len(odd))
    assert instrument.error is None


def test_groups_beyond_the_hundredth_go_to_other(applied: Applied) -> None:
    """At most MAX_GROUPS named groups per instrument and process; the rest count in other."""
    instrument = applied.put("s", spec("stats", "amount", by="tier"))
    for n in range(150):
        checkout(1.0, f"t{n:03d}")
        checkout(2.0, f"t{n:03d}")
    summary = instrument.summary()
    assert len(summary) == MAX_GROUPS + 1
    assert summary[OTHER].count == 2 * (150 - MAX_GROUPS)
    assert sum(sketch.count for sketch in summary.values()) == 300


def test_group_names_are_texts_cut_to_64_characters_and_redacted(applied: Applied) -> None:
    """A group is its value's text cut to 64 characters; a secret-named value is <redacted>."""
    instrument = applied.put("s", spec("stats", "amount", by="tier"))
    checkout(1, "x" * 100)
    checkout(1, ("a", 1))
    assert set(instrument.summary()) == {"x" * GROUP_CHARS, "('a', 1)"}
    secret = applied.put("p", spec("stats", "amount", by="password"))
    checkout(1)
    assert list(secret.summary()) == ["<redacted>"]


def test_the_hot_path_folds_its_queue_when_no_flusher_does(applied: Applied) -> None:
    """With no flusher folding, a queue never holds much more than SPILL values, and every
    value is counted all the same."""
    instrument = applied.put("s", spec("stats", "amount"))
    queue = instrument.aggregate.groups.queues["all"]
    longest = 0
    for n in range(3 * SPILL + 7):
        checkout(float(n))
        longest = max(longest, len(queue))
    assert longest <= SPILL + 1
    assert instrument.summary()["all"].count == 3 * SPILL + 7


def test_no_rate_limit_applies(applied: Applied) -> None:
    """A rate in the spec does not limit stats: every call counts."""
    instrument = applied.put("s", spec("stats", "amount", rate=1))
    for _ in range(50):
        checkout(1.0)
    assert instrument.rate is None
    assert instrument.summary()["all"].count == 50


def test_takes_carry_what_changed_as_cumulative_totals(applied: Applied) -> None:
    """A take holds the groups that changed since the last one, with their totals so far;
    with nothing new, take() is None."""
    instrument = applied.put("s", spec("stats", "amount", by="tier"))
    aggregate = instrument.aggregate
    checkout(1.0, "a")
    checkout(1.0, "b")
    first = aggregate.take()
    assert first is not None and sorted(first.groups) == ["a", "b"]
    assert aggregate.take() is None
    checkout(4.0, "a")
    second = aggregate.take()
    assert second is not None and list(second.groups) == ["a"]
    assert second.groups["a"]["n"] == "2" and second.groups["a"]["max"] == "4.0"
    assert second.incarnation == first.incarnation


def test_detaching_the_spec_retires_its_aggregate(applied: Applied) -> None:
    """Removing the spec gives its aggregate to the flusher once more, then forgets it."""
    instrument = applied.put("s", spec("stats", "amount"))
    aggregate = instrument.aggregate
    assert aggregate in AGGREGATES.live() and aggregate.origin.spec == "s"
    applied.mgr.specs.clear()
    applied.mgr.apply()
    assert aggregate not in AGGREGATES.live()
    assert aggregate in AGGREGATES.drain()
    assert aggregate not in AGGREGATES.drain()


def test_a_spec_edited_in_place_keeps_its_aggregate(applied: Applied) -> None:
    """A new version of the spec (a --by added) goes on adding to the same aggregate."""
    instrument = applied.put("s", spec("stats", "amount"))
    checkout(1.0)
    body = spec("stats", "amount", by="tier")
    body["lastmodified"] = dt.datetime(2026, 1, 2)
    again = applied.put("s", body)
    checkout(2.0, "gold")
    assert again is instrument
    summary = instrument.summary()
    assert (summary["all"].count, summary["gold"].count) == (1, 1)


def test_distinct_counts_values_and_invalid_ones(applied: Applied) -> None:
    """A distinct instrument queues what it can count and counts the rest as invalid."""
    instrument = applied.put("d", spec("distinct", "amount"))
    assert isinstance(instrument, DistinctInstrument)
    for value in [1, 1.0, True, "1", b"1", None, ("a", 2), [1], {"a": 1}]:
        checkout(value)
    take = instrument.aggregate.take()
    assert take is not None
    group = take.groups["all"]
    assert (group.counted, group.invalid) == (7, 2)
    assert len(group.elements) == 5  # 1 == 1.0 == True; "1"; b"1"; None; ("a", 2)


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), (1, True), (0, False), (2**70, float(2**70)), ("é", "é"), ((1, "x"), (1.0, "x"))],
)
def test_values_python_finds_equal_have_one_canonical_form(a: Any, b: Any) -> None:
    """Equal values count once across the fleet, whatever their type."""
    assert tallies.canonical(a) == tallies.canonical(b)


@pytest.mark.parametrize(("a", "b"), [(1, "1"), ("1", b"1"), (1.5, "1.5"), (None, "None")])
def test_values_python_finds_different_have_different_forms(a: Any, b: Any) -> None:
    """Unequal values never share a canonical form."""
    assert tallies.canonical(a) != tallies.canonical(b)


def test_long_values_are_held_by_a_digest_and_odd_ones_are_invalid() -> None:
    """Texts over 64 bytes are held by a 16-byte digest; containers and objects are INVALID;
    a redacted value is one value."""
    long_form = tallies.canonical("x" * 10_000)
    assert len(long_form) == 18 and long_form != tallies.canonical("x" * 10_001)
    assert tallies.canonical([1]) is INVALID and tallies.canonical(object()) is INVALID
    assert tallies.canonical(REDACTED) == b"r:"
    same = uuid.UUID(int=12345)
    assert tallies.canonical(same) == tallies.canonical(uuid.UUID(str(same)))
    assert tallies.canonical(same) != tallies.canonical(str(same))


def test_distinct_elements_between_takes_are_bounded(
    applied: Applied, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_PENDING elements between two takes, new ones are dropped and counted in the
    spec's dropped counter; memory stays bounded."""
    monkeypatch.setattr(tallies, "MAX_PENDING", 10)
    instrument = applied.put("d", spec("distinct", "amount"))
    for n in range(25):
        checkout(n)
    take = instrument.aggregate.take()
    assert take is not None and len(take.groups["all"].elements) == 10
    assert take.groups["all"].counted == 25
    assert instrument.aggregate.dropped == 15
    assert applied.mgr.counters()["d"]["dropped"] == 15


def test_a_forked_child_starts_a_new_incarnation_with_nothing_queued(applied: Applied) -> None:
    """reset() (a forked child) empties queues and totals and takes a new incarnation id."""
    instrument = applied.put("s", spec("stats", "amount"))
    checkout(1.0)
    before = instrument.aggregate.incarnation
    instrument.aggregate.reset()
    assert instrument.aggregate.take() is None
    assert instrument.aggregate.incarnation != before
    checkout(2.0)
    assert instrument.summary()["all"].count == 1


class Tier(enum.Enum):
    GOLD = 1
    SILVER = 2


def test_groups_of_flags_numbers_and_enums_keep_their_own_names(applied: Applied) -> None:
    """True, 1 and 1.0 are three groups; an Enum member is named by its name; all are found
    again without the slow path's lock."""
    instrument = applied.put("s", spec("stats", "amount", by="tier"))
    for tier in [True, 1, 1.5, None, Tier.GOLD, Tier.GOLD, True]:
        checkout(1.0, tier)
    summary = instrument.summary()
    assert {g: s.count for g, s in summary.items()} == {
        "True": 2,
        "1": 1,
        "1.5": 1,
        "None": 1,
        "GOLD": 2,
    }
    groups = instrument.aggregate.groups
    assert (bool, True) in groups.keys and (Tier, Tier.GOLD) in groups.keys
