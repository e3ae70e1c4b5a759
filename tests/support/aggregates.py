"""A counting aggregate and its writer, to test the aggregates and the flusher with."""

from __future__ import annotations

from typing import Any

import redis

from diagnose.aggregates import Aggregate
from diagnose.outbox import Origin
from diagnose_redis._subscriber import flusher as flushing
from diagnose_redis.protocol import Keys

__all__ = ("FAIL_NEXT", "Counter")


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
