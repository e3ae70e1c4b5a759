"""What instruments of specs add up in memory for the fleet (statistics, exception counts),
until the subscriber's flusher merges it into Redis.

Invariant: the target's thread only updates memory (no I/O, no lock held while anything
waits); ``take()`` hands the flusher what accumulated since the last take, and an aggregate
retired by its instrument is taken once more, so nothing added before a clean stop is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from diagnose.fork import LOCKS, after_fork_in_child
from diagnose.outbox import Origin

__all__ = ("AGGREGATES", "Aggregate", "Aggregates")


class Aggregate:
    """One instrument's running totals in this process; subclasses say what they hold.

    ``kind`` names the flusher's writer for it (``diagnose_redis`` registers one per kind).
    """

    kind: ClassVar[str] = ""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin

    def take(self) -> Any:
        """Return what was added since the last take and start afresh (None: nothing).

        Called by the flusher's thread only; it may race the target's thread, which must
        then lose nothing but may see its addition go with this take or the next.
        """
        return None

    def fold(self) -> bool:
        """Tidy what the target's thread added since the last call, in the flusher's thread,
        between takes (several times a second, Redis up or not); return True to ask for a
        flush now. Does nothing by default."""
        return False

    def taken(self, reply: Any) -> None:
        """Learn what Redis answered to the merge of the last take (its writer's reply)."""

    def reset(self) -> None:
        """Empty the totals without waiting on any lock (a forked child: they are the
        parent's to flush)."""
        self.take()


class Aggregates:
    """The process's live aggregates, for one flusher to take from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Aggregate] = {}
        self._retired: list[Aggregate] = []
        #: called (no argument) when the first aggregate arrives: the flusher may sleep
        self.on_first: Callable[[], None] | None = None

    def add(self, aggregate: Aggregate) -> None:
        """Start flushing aggregate."""
        with self._lock:
            first = not self._live and not self._retired
            self._live[id(aggregate)] = aggregate
        callback = self.on_first
        if first and callback is not None:
            callback()

    def retire(self, aggregate: Aggregate) -> None:
        """Stop flushing aggregate after one last take (its instrument is gone)."""
        with self._lock:
            if self._live.pop(id(aggregate), None) is not None:
                self._retired.append(aggregate)

    def drain(self) -> list[Aggregate]:
        """Return every aggregate to take from now; the retired ones are forgotten."""
        with self._lock:
            retired, self._retired = self._retired, []
            return [*self._live.values(), *retired]

    def live(self) -> list[Aggregate]:
        """Return the live aggregates (to fold), retiring none."""
        with self._lock:
            return list(self._live.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._live) + len(self._retired)

    def restart_in_child(self) -> None:
        """In a forked child: keep the live aggregates (their instruments live on) with
        their totals emptied, which are the parent's to flush."""
        self._lock = threading.Lock()
        self._retired = []
        self.on_first = None
        for aggregate in self._live.values():
            try:
                aggregate.reset()
            except Exception:
                pass


#: The process's aggregates.
AGGREGATES = Aggregates()


@after_fork_in_child(LOCKS)
def _after_fork_in_child() -> None:
    AGGREGATES.restart_in_child()
