"""The aggregates of instruments and the flusher that merges them into Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from diagnose.aggregates import Aggregate, Aggregates
from diagnose.outbox import Origin
from diagnose_redis._subscriber import flusher as flushing
from diagnose_redis.protocol import Keys


class Counter(Aggregate):
    """Counts calls of add(); a take is the count since the last one."""

    kind = "test-counter"

    def __init__(self, spec: str) -> None:
        super().__init__(Origin(spec, "test"))
        self.count = 0
        self.replies: list[Any] = []

    def add(self) -> None:
        self.count += 1

    def take(self) -> int | None:
        count, self.count = self.count, 0
        return count or None

    def taken(self, reply: Any) -> None:
        self.replies.append(reply)


FAIL_NEXT: list[bool] = []


@flushing.writer("test-counter")
def _write_counter(pipe: Any, keys: Keys, process: str, aggregate: Aggregate, take: Any) -> int:
    if FAIL_NEXT:
        FAIL_NEXT.pop()
        raise redis.ConnectionError("refused by the test")
    pipe.hincrby(f"{keys.prefix}:count:{aggregate.origin.spec}", process, take)
    return 1


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


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's empty database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


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
