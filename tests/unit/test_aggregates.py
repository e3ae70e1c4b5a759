"""The aggregates of instruments: what the flusher takes, and what a forked child keeps."""

from __future__ import annotations

from diagnose.aggregates import Aggregates
from support.aggregates import Counter


def test_retired_aggregates_are_taken_once_more_then_forgotten() -> None:
    """drain() returns the live aggregates and, one last time, the retired ones."""
    registry = Aggregates()
    live, gone = Counter("a"), Counter("b")
    registry.add(live)
    registry.add(gone)
    registry.retire(gone)
    assert registry.drain() == [live, gone]
    assert registry.drain() == [live]
    assert len(registry) == 1


def test_the_first_aggregate_wakes_the_flusher() -> None:
    """on_first is called when the registry goes from empty to holding one aggregate."""
    registry = Aggregates()
    woken: list[int] = []
    registry.on_first = lambda: woken.append(1)
    registry.add(Counter("a"))
    registry.add(Counter("b"))
    assert woken == [1]


def test_a_forked_child_keeps_its_aggregates_with_empty_totals() -> None:
    """restart_in_child() keeps the live aggregates (their instruments live on in the
    child) and empties their totals, which are the parent's to flush."""
    registry = Aggregates()
    counter = Counter("a")
    registry.add(counter)
    counter.add()
    registry.restart_in_child()
    assert registry.drain() == [counter] and counter.take() is None
