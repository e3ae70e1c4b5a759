"""The aggregates of ``stats`` and ``distinct`` instruments: what the flusher's thread folds
from the group queues (``_groups``) and takes to merge into Redis.

Invariants:

- Folds and takes happen under ``lock``, in the flusher's thread; the target's thread only
  appends to the group queues, and folds (``spill``) only when its queue has grown over
  SPILL and no fold is under way: it never waits for the lock.
- Each aggregate is one *incarnation* (a random ``incarnation`` id): its totals are
  cumulative over its life and a take carries the current totals of what changed, which
  Redis stores as they are (HSET; a HyperLogLog's registers, SET). Writing a take twice,
  or a failed flush's take again, changes nothing: a count is never added twice, and a
  process id used again after a restart writes to a new incarnation's keys, never over the
  old one's.
- Memory is bounded: the queues by SPILL (``_groups``); a stats group by its sketch (the
  range of its values); a distinct group's elements since the last take by MAX_PENDING,
  beyond which they are dropped and counted (``dropped``) -- a long Redis outage at a high
  cardinality loses elements, never memory.
"""

from __future__ import annotations

import enum
import hashlib
import math
import secrets
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from diagnose._output.redaction import REDACTED
from diagnose.aggregates import Aggregate
from diagnose.instruments._groups import GroupQueues
from diagnose.outbox import Origin
from diagnose.sketch import INVALID, Sketch

__all__ = (
    "FLUSH_SOON",
    "MAX_PENDING",
    "DistinctAggregate",
    "DistinctGroup",
    "DistinctTake",
    "EXACT_DISTINCT",
    "StatsAggregate",
    "StatsTake",
    "canonical",
)

#: Distinct values an incarnation records one by one per group, for an exact count below it.
EXACT_DISTINCT = 100
#: Distinct elements an aggregate holds at most between two takes (all groups) ...
MAX_PENDING = 65_536
#: ... and from how many on it asks the flusher to flush at once.
FLUSH_SOON = 16_384
# Texts and bytes longer than this are held by a digest of them (their canonical form).
_LONG = 64


class StatsTake(NamedTuple):
    """The groups of a stats aggregate that changed since its last take, each as its
    sketch's hash fields (``Sketch.fields``), totals so far."""

    incarnation: str
    groups: dict[str, dict[str, str]]


class DistinctGroup(NamedTuple):
    """One group of a distinct take: values counted and invalid ones so far (cumulative);
    the canonical forms of the values seen since the last take; of those, the ones that
    join the group's exact record (its first EXACT_DISTINCT distinct forms); and whether
    the group has more distinct values than that (its count is then the estimate's)."""

    counted: int
    invalid: int
    elements: list[bytes]
    exact: list[bytes]
    over: bool


class DistinctTake(NamedTuple):
    """What changed in a distinct aggregate since its last take, per group."""

    incarnation: str
    groups: dict[str, DistinctGroup]


def _incarnation() -> str:
    return secrets.token_hex(4)


class _FleetAggregate(Aggregate):
    """The queues and totals of one instrument of a spec in this process."""

    def __init__(self, origin: Origin, owner: Any = None) -> None:
        super().__init__(origin)
        self.groups = GroupQueues()
        self.lock = threading.Lock()
        self.incarnation = _incarnation()
        #: values lost (distinct elements beyond MAX_PENDING)
        self.dropped = 0
        self._owner: Callable[[], Any] = weakref.ref(owner) if owner is not None else _nobody

    def _fold(self) -> None:
        raise NotImplementedError()

    def spill(self) -> None:
        """Fold now, in the target's thread, unless a fold is under way (what the hot path
        does when it finds its queue over SPILL: the flusher has fallen behind)."""
        if self.lock.acquire(blocking=False):
            try:
                self._fold()
            finally:
                self.lock.release()

    def _count_drops(self, lost: int) -> None:
        """Add values lost to dropped and to the owner's ``dropped`` counter (the spec's
        status shows it)."""
        if not lost:
            return
        self.dropped += lost
        owner = self._owner()
        if owner is not None:
            owner.stats.dropped += lost


def _nobody() -> None:
    return None


class StatsAggregate(_FleetAggregate):
    """Count, sum, min, max and log-bucket sketch per group (``diagnose.sketch``)."""

    kind = "stats"

    def __init__(self, origin: Origin, owner: Any = None) -> None:
        super().__init__(origin, owner)
        self.sketches: dict[str, Sketch] = {}
        self._changed: set[str] = set()

    def fold(self) -> bool:
        """Move the queued values into the groups' sketches."""
        with self.lock:
            self._fold()
        return False

    def _fold(self) -> None:
        for text, values in self.groups.drain():
            sketch = self.sketches.get(text)
            if sketch is None:
                sketch = self.sketches[text] = Sketch()
            sketch.add_all(values)
            self._changed.add(text)

    def take(self) -> StatsTake | None:
        """Return the fields of the groups that changed since the last take (None: none)."""
        with self.lock:
            self._fold()
            if not self._changed:
                return None
            changed = {text: self.sketches[text].fields() for text in self._changed}
            self._changed = set()
        return StatsTake(self.incarnation, changed)

    def summary(self) -> dict[str, Sketch]:
        """Return a copy of each group's sketch in this process (folded now)."""
        with self.lock:
            self._fold()
            return {text: Sketch().merge(sketch) for text, sketch in self.sketches.items()}

    def reset(self) -> None:
        self.groups.clear()
        self.lock = threading.Lock()
        self.sketches = {}
        self._changed = set()
        self.incarnation = _incarnation()


class _DistinctState:
    __slots__ = ("count", "exact", "invalid", "over", "pending")

    def __init__(self) -> None:
        self.count = 0
        self.invalid = 0
        self.pending: set[bytes] = set()
        #: the group's first EXACT_DISTINCT distinct forms (emptied once over)
        self.exact: set[bytes] = set()
        self.over = False

    def record(self) -> list[bytes]:
        """Add the pending forms to the exact record; return those new to it (all of
        them, the time it goes over the limit: the hash says so then)."""
        if self.over:
            return []
        new = [form for form in self.pending if form not in self.exact]
        self.exact.update(new)
        if len(self.exact) > EXACT_DISTINCT:
            self.over = True
            self.exact = set()
            return []
        return new


class DistinctAggregate(_FleetAggregate):
    """Per group: values counted, invalid ones, and the canonical forms of the values seen
    since the last take (``canonical``), which go into HyperLogLogs; and the first
    EXACT_DISTINCT distinct forms, recorded one by one, so that small counts are exact."""

    kind = "distinct"

    def __init__(self, origin: Origin, owner: Any = None) -> None:
        super().__init__(origin, owner)
        self.states: dict[str, _DistinctState] = {}
        self._pending = 0
        self._changed: set[str] = set()

    def fold(self) -> bool:
        """Move the queued values into the groups' pending elements; return True when
        enough are pending that the flusher should flush now."""
        with self.lock:
            self._fold()
            return self._pending >= FLUSH_SOON

    def _fold(self) -> None:
        lost = 0
        for text, values in self.groups.drain():
            state = self.states.get(text)
            if state is None:
                state = self.states[text] = _DistinctState()
            # Equal values have one canonical form: only the distinct ones need theirs.
            unique = set(values)
            invalid = 0
            if INVALID in unique:
                invalid = values.count(INVALID)
                unique.discard(INVALID)
            state.invalid += invalid
            state.count += len(values) - invalid
            pending = state.pending
            for value in unique:
                form = value if type(value) is bytes else canonical(value)
                if form in pending:
                    continue
                if self._pending >= MAX_PENDING:
                    lost += 1
                    continue
                pending.add(form)
                self._pending += 1
            self._changed.add(text)
        self._count_drops(lost)

    def take(self) -> DistinctTake | None:
        """Return each changed group's counts and the elements pending (None: none)."""
        with self.lock:
            self._fold()
            if not self._changed:
                return None
            groups = {}
            for text in self._changed:
                state = self.states[text]
                exact = state.record()
                elements = list(state.pending)
                groups[text] = DistinctGroup(
                    state.count, state.invalid, elements, exact, state.over
                )
                state.pending = set()
            self._changed = set()
            self._pending = 0
        return DistinctTake(self.incarnation, groups)

    def reset(self) -> None:
        self.groups.clear()
        self.lock = threading.Lock()
        self.states = {}
        self._pending = 0
        self._changed = set()
        self.incarnation = _incarnation()


def _digested(tag: bytes, data: bytes) -> bytes:
    if len(data) > _LONG:
        return tag.upper() + hashlib.blake2b(data, digest_size=16).digest()
    return tag + data


def _integer(value: int) -> bytes:
    return b"i:" + format(value, "x").encode()


def canonical(value: Any, depth: int = 0) -> Any:
    """Return the bytes that stand for value when counting distinct values: the same in
    every process for values Python finds equal (1, 1.0 and True; a str and itself), and
    different for values it does not (``"1"`` and ``1``). Texts and bytes over 64 bytes are
    held by a digest. Accepted: str, bytes, int, float, bool, None, Enum members, UUIDs,
    and tuples of them (two levels deep, 16 items); INVALID for anything else. Never
    raises."""
    kind = type(value)
    try:
        if kind is str:
            return _digested(b"s:", value.encode("utf-8", "surrogatepass"))
        if kind is int or kind is bool:
            return _integer(int(value))
        if kind is float:
            if not math.isfinite(value):
                return b"f:" + repr(value).encode()
            if value.is_integer():
                return _integer(int(value))
            return b"f:" + value.hex().encode()
        if value is None:
            return b"n:"
        if kind is bytes:
            return _digested(b"b:", value)
        if value is REDACTED:
            return b"r:"
        if kind is tuple and depth < 2 and len(value) <= 16:
            parts = []
            for item in value:
                part = canonical(item, depth + 1)
                if part is INVALID:
                    return INVALID
                parts.append(len(part).to_bytes(2, "big") + part)
            return _digested(b"t:", b"".join(parts))
        if isinstance(value, enum.Enum):
            cls = type(value)
            return f"e:{cls.__module__}.{cls.__qualname__}.{value._name_}".encode()
        if kind.__module__ == "uuid" and kind.__name__ == "UUID":  # ids often are
            return b"u:" + int(value.int).to_bytes(16, "big")
        if isinstance(value, bool | int):
            return _integer(int(value))
        if isinstance(value, float):
            return canonical(float(value), depth)
    except Exception:
        pass
    return INVALID
