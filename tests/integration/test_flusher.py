"""The flusher merges the aggregates of instruments into a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from diagnose.aggregates import Aggregates
from diagnose_redis._subscriber import flusher as flushing
from diagnose_redis.protocol import Keys
from support.aggregates import FAIL_NEXT, Counter


def test_flushes_merge_counts_exactly_across_a_failure(client: redis.Redis) -> None:
    """A flush that fails keeps its takes and merges them with the next try: every add is
    counted once, and taken() gets the writer's last reply."""
    registry = Aggregates()
    counter = Counter("s")
    registry.add(counter)
    flusher = flushing.Flusher(client, Keys("agg"), lambda: "p1", aggregates=registry)
    for _ in range(3):
        counter.add()
    FAIL_NEXT.append(True)
    with pytest.raises(redis.ConnectionError):
        flusher.flush()
    for _ in range(2):
        counter.add()
    flusher.flush()  # the 3 kept from the failed flush
    flusher.flush()  # the 2 added meanwhile
    assert client.hget("agg:count:s", "p1") == b"5"
    assert counter.replies == [3, 5]


def test_the_thread_flushes_within_the_interval_and_once_more_at_stop(
    client: redis.Redis,
) -> None:
    """The flusher's thread merges what was added at least once per interval, and what was
    added last at its stop."""
    registry = Aggregates()
    counter = Counter("t")
    flusher = flushing.Flusher(
        client, Keys("agg"), lambda: "p1", aggregates=registry, interval=0.05
    )
    flusher.start()
    try:
        registry.add(counter)
        counter.add()
        deadline = time.monotonic() + 5.0
        while client.hget("agg:count:t", "p1") != b"1" and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert client.hget("agg:count:t", "p1") == b"1"
        counter.add()
    finally:
        flusher.stop(timeout=5.0)
    assert not flusher.running
    assert client.hget("agg:count:t", "p1") == b"2"
