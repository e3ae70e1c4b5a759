"""The flusher: merge what the instruments of specs added up in memory into Redis.

A thread takes every live aggregate (``diagnose.aggregates``) once per INTERVAL and merges
the takes in one round trip, a MULTI/EXEC transaction: all of a flush lands, or none of it
and the takes are merged again on the next try (a count is never lost nor counted twice).
Idle, with no aggregate, it sleeps until the first one arrives. Each kind of aggregate has
a writer, registered with ``writer(kind)``, that queues its commands on the transaction.
Between flushes (and while Redis is away) it lets the aggregates fold what the target's
threads queued every FOLD_INTERVAL (``Aggregate.fold``), and flushes early when one asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff

from diagnose.aggregates import AGGREGATES, Aggregate, Aggregates
from diagnose_redis.protocol import Keys

__all__ = ("FOLD_INTERVAL", "INTERVAL", "Flusher", "Writer", "writer")

log = logging.getLogger("diagnose_redis")

#: Seconds between two flushes while aggregates live.
INTERVAL = 1.0
#: Seconds an idle flusher sleeps at most (the first aggregate wakes it sooner).
IDLE = 30.0
#: Seconds between two folds of the aggregates.
FOLD_INTERVAL = 0.05

#: A writer queues the commands that merge one take on a transaction and returns how many
#: replies they give (the aggregate's ``taken()`` receives the last of them).
Writer = Callable[[Any, Keys, str, Aggregate, Any], int]
_WRITERS: dict[str, Writer] = {}


def writer(kind: str) -> Callable[[Writer], Writer]:
    """Register the function that merges takes of aggregates of this kind."""

    def register(function: Writer) -> Writer:
        _WRITERS[kind] = function
        return function

    return register


class Flusher:
    """Merge the process's aggregates into Redis, in a daemon thread of its own."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        process_id: Callable[[], str],
        *,
        aggregates: Aggregates = AGGREGATES,
        interval: float = INTERVAL,
        on_error: Callable[[Exception], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.process_id = process_id
        self.aggregates = aggregates
        self.interval = interval
        self.on_error = on_error
        #: called before each round trip (the status reporter reads a reply it is owed)
        self.before_send = before_send
        #: flushes that reached Redis, and those that failed
        self.flushes = 0
        self.failures = 0
        #: takes not yet merged, kept across a failed flush: (aggregate, take)
        self._pending: list[tuple[Aggregate, Any]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._backoff = ExponentialWithJitterBackoff(cap=5.0, base=0.2)
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start flushing."""
        if self._thread is not None:
            return
        self.aggregates.on_first = self._wake.set
        self._thread = threading.Thread(
            target=self._run, name="diagnose_redis.flusher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Flush once more (within timeout) and stop the thread."""
        if self._thread is None:
            return
        self.aggregates.on_first = None
        self._stopping.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping.is_set()
            if not stopping:
                if failures:
                    self._pause(self._backoff.compute(failures), early=False)
                elif not self._pending and not len(self.aggregates):
                    self._wake.wait(IDLE)
                    self._wake.clear()
                    continue
                else:
                    self._pause(self.interval, early=True)
            try:
                self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                self.failures += 1
                log.debug("merging aggregates failed (%s); retrying", exc)
                if self.on_error is not None:
                    try:
                        self.on_error(exc)
                    except Exception:
                        pass
            if stopping:
                return

    def _pause(self, seconds: float, *, early: bool) -> None:
        """Wait seconds (or until stop), folding the aggregates every FOLD_INTERVAL; with
        early, return as soon as one asks for a flush."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.wait(min(left, FOLD_INTERVAL)):
                return
            if self.fold() and early:
                return

    def fold(self) -> bool:
        """Let every live aggregate fold; return True if one asks for a flush now."""
        soon = False
        for aggregate in self.aggregates.live():
            try:
                soon = bool(aggregate.fold()) or soon
            except Exception as exc:
                log.debug("an aggregate failed to fold: %s", exc)
        return soon

    def flush(self) -> None:
        """Take every aggregate and merge the takes in one transaction (raise if Redis
        fails: the takes are kept and merged again, while the aggregates go on adding up
        in memory, each within its own bounds)."""
        if not self._pending:
            for aggregate in self.aggregates.drain():
                take = aggregate.take()
                if take is not None:
                    self._pending.append((aggregate, take))
            if not self._pending:
                return
        if self.before_send is not None:
            self.before_send()
        process = self.process_id()
        pipe = self.client.pipeline(transaction=True)
        spans: list[tuple[Aggregate, int]] = []
        for aggregate, take in self._pending:
            write = _WRITERS.get(aggregate.kind)
            if write is None:
                continue  # nobody merges this kind: dropped, never retried for ever
            spans.append((aggregate, write(pipe, self.keys, process, aggregate, take)))
        if not spans:
            self._pending = []
            return
        replies = pipe.execute()
        self._pending = []
        self.flushes += 1
        at = 0
        for aggregate, count in spans:
            at += count
            if count:
                try:
                    aggregate.taken(replies[at - 1])
                except Exception as exc:
                    log.debug("an aggregate refused its reply: %s", exc)
