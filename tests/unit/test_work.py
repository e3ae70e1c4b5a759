"""Tests of the subscriber's work items and the backlog that keeps them in order."""

from __future__ import annotations

import dataclasses

import pytest

from diagnose_redis._subscriber.work_items import Backlog, Event, Snapshot


def test_event_from_decoded_event() -> None:
    """A decoded put becomes an Event with its spec; a delete has none."""
    put = Event.from_decoded({"op": "put", "id": "a", "version": 3, "spec": {"x": 1}})
    assert put == Event("put", "a", 3, {"x": 1})
    assert Event.from_decoded({"op": "delete", "id": "a", "version": 4}).spec is None


def test_work_items_are_frozen() -> None:
    """Work items cannot be changed once handed to another thread."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Snapshot(1, {}).version = 2  # type: ignore[misc]


def test_backlog_is_empty_only_when_all_queued_work_is_done() -> None:
    """The listener may apply itself only once the applier finished all it was given."""
    backlog = Backlog()
    assert backlog.empty()
    backlog.queue(2)
    assert not backlog.empty()
    backlog.finish(1)
    assert not backlog.empty()
    backlog.finish(1)
    assert backlog.empty()
