"""The fleet's quantile sketch: log buckets with 1 % relative accuracy, mergeable by adding
counts (the mapping of DDSketch, Masson et al., VLDB 2019), and its flat form as the fields
of a Redis hash, which the processes write and ``coordinator stats`` reads.

Invariants:

- A positive value x falls in bucket ``k = ceil(log_GAMMA(x))``, with ``GAMMA = (1 + ALPHA)
  / (1 - ALPHA)``: ``GAMMA**(k-1) < x <= GAMMA**k``. A negative value falls in the negative
  store at the bucket of ``-x``; zero has a count of its own.
- The value of bucket k, ``2 * GAMMA**k / (GAMMA + 1)``, is within ALPHA (relative) of every
  value in it. So the quantile read from any merge of sketches is within ALPHA of the value
  of that rank among all the values added, wherever they were added.
- Counts only add up: merging is exact, in any order, however many sketches.
- Only finite ints and floats count (``bool`` is not a number here: a flag in a latency
  histogram is a mistake); anything else, NaN and infinities included, is ``invalid``.
  A bucket index stays within about +-36,000 for any float, so a sketch is bounded by the
  range of its values, whatever their number.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

__all__ = (
    "ALPHA",
    "GAMMA",
    "INVALID",
    "Sketch",
    "bucket_of",
    "bucket_value",
    "number",
)

#: Relative accuracy of every quantile.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
# Bucket indexes are computed with log2 (a third of log's cost in CPython): the index of x
# is ceil(log2(x) / log2(GAMMA)), the same number.
_PER_LOG = 1.0 / math.log2(GAMMA)
_PER_LOGS = itertools.repeat(_PER_LOG)
_PLAIN = frozenset({int, float})
_inf = math.inf


class _Invalid:
    """What the hot path queues for a value that is not a number (it counts as invalid)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def bucket_of(x: float) -> int:
    """Return the bucket index of a positive finite x."""
    return math.ceil(math.log2(x) * _PER_LOG)


def bucket_value(k: int) -> float:
    """Return the value that stands for bucket k (within ALPHA of all its values)."""
    try:
        return 2.0 * math.exp(k * _LOG_GAMMA) / (GAMMA + 1.0)
    except OverflowError:
        return _inf


def number(value: Any) -> Any:
    """Return value as the sketch counts it: an int or float as it is, a subclass of them
    (not bool) as a float; INVALID for anything else. Never raises."""
    kind = type(value)
    if kind is int or kind is float:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return INVALID
    try:
        return float(value)
    except Exception:
        return INVALID


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class Sketch:
    """Count, sum, min, max, invalid count and log buckets of some values.

    ``positive`` and ``negative`` map a bucket index to its count; ``low``/``high`` are the
    smallest and largest value added, as they were (an int stays an int, exact).
    """

    __slots__ = ("count", "high", "invalid", "low", "negative", "positive", "total", "zero")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low: int | float | None = None
        self.high: int | float | None = None
        self.invalid = 0
        self.zero = 0
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}

    # --- adding ---------------------------------------------------------------------

    def add(self, value: Any) -> bool:
        """Add one value; return False (counted as invalid) when it is not a number."""
        return bool(self.add_all((value,)))

    def add_all(self, values: Iterable[Any]) -> int:
        """Add values; return how many were numbers.

        Plain finite ints and floats (nearly always all of them) are counted by C loops
        (``map``, ``filter``, ``Counter``): a fraction of a microsecond a value.
        """
        values = values if isinstance(values, list) else list(values)
        if not values:
            return 0
        if not set(map(type, values)) <= _PLAIN:
            return self._add_each(values)
        try:
            total = math.fsum(values)
        except OverflowError:
            return self._add_each(values)
        if not math.isfinite(total):
            return self._add_each(values)
        low, high = min(values), max(values)
        if low > 0:
            positives, negatives = values, []
        else:
            positives = list(filter(partial(operator.lt, 0), values))
            negatives = list(filter(partial(operator.gt, 0), values))
        self._count(self.positive, positives)
        if negatives:
            self._count(self.negative, map(operator.neg, negatives))
        self.zero += len(values) - len(positives) - len(negatives)
        self.count += len(values)
        self.total += total
        if self.low is None or low < self.low:
            self.low = low
        if self.high is None or high > self.high:
            self.high = high
        return len(values)

    @staticmethod
    def _count(store: dict[int, int], magnitudes: Iterable[Any]) -> None:
        """Count the positive magnitudes into the buckets of store."""
        found = Counter(map(math.ceil, map(operator.mul, map(math.log2, magnitudes), _PER_LOGS)))
        for k, n in found.items():
            store[k] = store.get(k, 0) + n

    def _add_each(self, values: list[Any]) -> int:
        """Add values one by one: some are not plain finite ints and floats."""
        positive, negative = self.positive, self.negative
        log, ceil, per_log = math.log2, math.ceil, _PER_LOG
        count, total, zero, invalid = 0, 0.0, 0, 0
        low, high = self.low, self.high
        for value in values:
            kind = type(value)
            if kind is not float and kind is not int:
                value = number(value)
                if value is INVALID:
                    invalid += 1
                    continue
            try:
                x = float(value)
            except OverflowError:
                invalid += 1
                continue
            if x > 0.0:
                if x == _inf:
                    invalid += 1
                    continue
                k = ceil(log(x) * per_log)
                positive[k] = positive.get(k, 0) + 1
            elif x < 0.0:
                if x == -_inf:
                    invalid += 1
                    continue
                k = ceil(log(-x) * per_log)
                negative[k] = negative.get(k, 0) + 1
            elif x == 0.0:
                zero += 1
            else:  # NaN
                invalid += 1
                continue
            count += 1
            total += x
            if low is None or value < low:
                low = value
            if high is None or value > high:
                high = value
        self.count += count
        self.total += total
        self.zero += zero
        self.invalid += invalid
        self.low, self.high = low, high
        return count

    def merge(self, other: Sketch) -> Sketch:
        """Add other's values to this sketch (exact); return self."""
        self.count += other.count
        self.total += other.total
        self.zero += other.zero
        self.invalid += other.invalid
        if other.low is not None and (self.low is None or other.low < self.low):
            self.low = other.low
        if other.high is not None and (self.high is None or other.high > self.high):
            self.high = other.high
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        return self

    # --- reading --------------------------------------------------------------------

    @property
    def mean(self) -> float | None:
        """The mean of the values, or None when there are none."""
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Return the value of rank ``q * (count - 1)`` (0 <= q <= 1) within ALPHA, kept
        within [min, max]; None when the sketch holds no number."""
        if not self.count:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1, not {q!r}")
        rank = q * (self.count - 1)
        seen = 0
        estimate: float | None = None
        for k in sorted(self.negative, reverse=True):
            seen += self.negative[k]
            if seen > rank:
                estimate = -bucket_value(k)
                break
        if estimate is None:
            seen += self.zero
            if seen > rank:
                estimate = 0.0
        if estimate is None:
            for k in sorted(self.positive):
                seen += self.positive[k]
                if seen > rank:
                    estimate = bucket_value(k)
                    break
        if estimate is None:  # rounding at q=1 with counts that do not add up
            estimate = float(self.high) if self.high is not None else 0.0
        assert self.low is not None and self.high is not None
        return min(max(estimate, float(self.low)), float(self.high))

    def buckets(self) -> list[tuple[float, int]]:
        """Return (bucket value, count) of every non-empty bucket, smallest value first."""
        rows = [(-bucket_value(k), n) for k, n in self.negative.items() if n]
        if self.zero:
            rows.append((0.0, self.zero))
        rows.extend((bucket_value(k), n) for k, n in self.positive.items() if n)
        rows.sort()
        return rows

    # --- the flat form (hash fields) ---------------------------------------------------

    def fields(self) -> dict[str, str]:
        """Return the sketch as hash fields: ``n``, ``sum``, ``min``, ``max``, ``inv``,
        ``z``, and the buckets of each store in one field, ``+`` and ``-``: ``K:N``
        pairs, space-separated (a handful of fields, so that Redis keeps the hash small)."""
        out = {"n": str(self.count), "sum": repr(self.total), "inv": str(self.invalid)}
        if self.low is not None:
            out["min"] = repr(self.low)
            out["max"] = repr(self.high)
        if self.zero:
            out["z"] = str(self.zero)
        for name, store in (("+", self.positive), ("-", self.negative)):
            if store:
                out[name] = " ".join(f"{k}:{n}" for k, n in sorted(store.items()))
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Sketch:
        """Read a sketch from its hash fields (text or bytes values); unknown or unreadable
        fields are skipped."""
        sketch = cls()
        for name, raw in fields.items():
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                if name == "n":
                    sketch.count = int(text)
                elif name == "sum":
                    sketch.total = float(text)
                elif name == "min":
                    sketch.low = _parse_number(text)
                elif name == "max":
                    sketch.high = _parse_number(text)
                elif name == "inv":
                    sketch.invalid = int(text)
                elif name == "z":
                    sketch.zero = int(text)
                elif name in ("+", "-"):
                    store = sketch.positive if name == "+" else sketch.negative
                    for pair in text.split():
                        k, _, n = pair.partition(":")
                        store[int(k)] = int(n)
            except ValueError:
                continue
        return sketch

    def __repr__(self) -> str:
        return (
            f"Sketch(count={self.count}, min={self.low!r}, max={self.high!r}, "
            f"invalid={self.invalid}, buckets={len(self.positive) + len(self.negative)})"
        )
