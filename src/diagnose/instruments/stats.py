"""stats and distinct: statistics of a value across the fleet, added up in each process's
memory and merged in Redis by the subscriber's flusher; nothing is emitted per call.

``stats`` keeps count, sum, min, max and a log-bucket sketch with 1 % relative accuracy
(``diagnose.sketch``) of a number; ``distinct`` counts the distinct values of an expression
(Redis HyperLogLog). ``custom["by"]`` (``coordinator publish --by EXPR``) groups them by the
value of another expression (at most 100 groups per spec and process; see ``_groups``).

The hot path evaluates the expressions and appends the value to its group's queue: no lock,
no I/O, no allocation for an int or float (nor for a str or int group). The rest -- buckets,
canonical forms -- happens in the flusher's thread (``_tallies``), or, when that falls behind
and a queue grows over SPILL values, once in the target's thread (``_groups``). A value that is
not a number (stats) or not a plain value (distinct) is counted as invalid, never raised.
The instrument of a spec registers its aggregate with ``diagnose.aggregates`` when the
manager gives it its origin, and retires it when the manager takes it off its probe.
"""

from __future__ import annotations

from typing import Any

from diagnose.aggregates import AGGREGATES
from diagnose.instruments._groups import ALL, SPILL
from diagnose.instruments._tallies import (
    EXACT_DISTINCT,
    DistinctAggregate,
    StatsAggregate,
    canonical,
)
from diagnose.instruments.base import Instrument, omitted
from diagnose.outbox import Origin
from diagnose.sketch import Sketch, number

__all__ = ("EXACT_DISTINCT", "DistinctInstrument", "FleetInstrument", "StatsInstrument")


class FleetInstrument(Instrument):
    """An instrument whose values add up in an aggregate (``aggregate``), by group."""

    aggregate: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._origin: Origin | None = None
        self.aggregate = self._new_aggregate()
        super().__init__(*args, **kwargs)
        self._configure()

    def _new_aggregate(self) -> Any:
        raise NotImplementedError()

    @property  # type: ignore[override]
    def origin(self) -> Origin | None:
        """The spec the instrument was made from; setting it starts flushing the aggregate."""
        return self._origin

    @origin.setter
    def origin(self, value: Origin | None) -> None:
        self._origin = value
        if value is not None:
            self.aggregate.origin = value
            AGGREGATES.add(self.aggregate)

    @property
    def rate(self) -> float | None:
        """None: no rate limit applies (nothing is emitted per call); the budget does."""
        return None

    @rate.setter
    def rate(self, value: float | None) -> None:
        self.stats.set_rate(None)

    def retire(self) -> None:
        """Flush the aggregate once more and stop (the instrument is off its probe)."""
        AGGREGATES.retire(self.aggregate)

    def _configure(self) -> None:
        by = self.custom.get("by")
        #: the expression that names each value's group, or None (one group, ``all``)
        self.by: str | None = by if isinstance(by, str) and by.strip() else None
        groups = self.aggregate.groups
        self._keys = groups.keys
        self._all = groups.queue(ALL) if self.by is None else None

    def update(self, **settings: Any) -> None:
        super().update(**settings)
        self._configure()

    def _compiled_expressions(self) -> list[Any]:
        codes = super()._compiled_expressions()
        by = self.custom.get("by")
        if isinstance(by, str):
            try:
                codes.append(self.compiled(by))
            except (SyntaxError, ValueError):
                pass
        return codes

    def _group_queue(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> Any:
        """Return the queue of this event's group (``--by``)."""
        expr: Any = self.by
        key = _locals.get(expr, omitted) if expr in self._plain else omitted
        if key is omitted:
            key = self.evaluate(expr, _globals, _locals)
        kind = type(key)
        queue = self._keys.get(key) if kind is str or kind is int else None
        if queue is None:
            queue = self.aggregate.groups.queue(key)
        return queue


class StatsInstrument(FleetInstrument):
    """Add a number to the fleet's statistics of this spec: count, sum, min, max and
    quantiles (``coordinator stats ID``). Anything but an int or float counts as invalid."""

    aggregate: StatsAggregate

    def _new_aggregate(self) -> StatsAggregate:
        return StatsAggregate(Origin("", "stats"), self)

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        # The hot path, paid on every call: the value (a bare name read as evaluate() would,
        # without its call), its group's queue, one append.
        expr = self.value
        value = _locals.get(expr, omitted) if expr in self._plain else omitted
        if value is omitted:
            value = self.evaluate(expr, _globals, _locals)
        queue = self._all
        if queue is None:
            queue = self._group_queue(_globals, _locals)
        kind = type(value)
        if kind is float or kind is int:
            queue.append(value)
        else:
            queue.append(number(value))
        if len(queue) > SPILL:
            self.aggregate.spill()

    def summary(self) -> dict[str, Sketch]:
        """Return this process's statistics so far, by group (an instrument made in code
        has no fleet: this is where its statistics are)."""
        return self.aggregate.summary()


class DistinctInstrument(FleetInstrument):
    """Add a value to the fleet's count of distinct values of this spec
    (``coordinator stats ID``). Values never leave the process: Redis gets a keyed hash.
    Accepted: str, bytes, int, float, bool, None, Enum members, UUIDs and tuples of them."""

    aggregate: DistinctAggregate

    def _new_aggregate(self) -> DistinctAggregate:
        return DistinctAggregate(Origin("", "distinct"), self)

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        # As StatsInstrument.fire: str and int go as they are, the rest as canonical forms.
        expr = self.value
        value = _locals.get(expr, omitted) if expr in self._plain else omitted
        if value is omitted:
            value = self.evaluate(expr, _globals, _locals)
        queue = self._all
        if queue is None:
            queue = self._group_queue(_globals, _locals)
        kind = type(value)
        if kind is str or kind is int:
            queue.append(value)
        else:
            queue.append(canonical(value))
        if len(queue) > SPILL:
            self.aggregate.spill()
