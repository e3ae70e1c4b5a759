"""ExceptionInstrument: count every exception that propagates out of a target, grouped by
fingerprint, and capture the first few of each with the locals of their frames.

How it flows, for the instrument of a spec:

1. The target raises; the probe's wrapper fires this instrument on its raise path only (a
   call that returns pays nothing for it), with ``result`` the exception.
2. In the target's thread: the fingerprint (``_output.frames``), a count in memory, and,
   unless the fingerprint is known to be fully captured fleet-wide or the capture rate
   (default 1 a second) says no, a capture: type, redacted message, fingerprint and the
   innermost frames with their locals, as plain data (no frame is kept).
3. The subscriber's flusher takes the counts and captures (``ExceptionAggregate.take``)
   about once a second and merges them into Redis, where an atomic claim lets the first K
   captures of each fingerprint across the fleet through to the output stream. Its reply
   names the fingerprints now full, which this process then stops capturing.

An instrument made in code (no spec) keeps its counts and first K captures per fingerprint
in this process and writes each capture as ``Exception (NAME) = JSON`` where log lines go.

Invariants: the exception, its traceback and the target's behaviour are untouched; the
target's thread does no I/O and waits on no lock but this instrument's own brief one; a
capture that fails counts as an instrument error and never raises; memory is bounded
(MAX_FINGERPRINTS per instrument, the rest counted under OVERFLOW; MAX_PENDING captures
waiting for their claim).
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
import weakref
from collections import deque
from types import TracebackType
from typing import Any

from diagnose._output import frames as framing
from diagnose._output import snapshot as snapshots
from diagnose.aggregates import AGGREGATES, Aggregate
from diagnose.instruments.base import Instrument
from diagnose.instruments.log import LogInstrument, write_line
from diagnose.outbox import OUTBOX, Origin
from diagnose.spec import DEFAULT_FIRST, DEFAULT_FRAMES

__all__ = (
    "DEFAULT_FIRST",
    "DEFAULT_FRAMES",
    "MAX_FINGERPRINTS",
    "MAX_PENDING",
    "OVERFLOW",
    "ExceptionAggregate",
    "ExceptionInstrument",
    "ExceptionTake",
)

#: Fingerprints one instrument tells apart in a process; the others count under OVERFLOW.
MAX_FINGERPRINTS = 1000
#: Captures waiting for their claim in Redis, per instrument; more are dropped (counted).
MAX_PENDING = 10
#: The fingerprint of the exceptions past MAX_FINGERPRINTS, with its type and message.
OVERFLOW = "0" * 16
OVERFLOW_TYPE = "(overflow)"
OVERFLOW_MESSAGE = f"exceptions of fingerprints past the first {MAX_FINGERPRINTS} of a process"
#: Captures an instrument keeps in ``captures`` (the latest).
KEPT = 20


def iso(at: float) -> str:
    """Return a unix time as the output stream writes times: ISO-8601 UTC, milliseconds."""
    when = _dt.datetime.fromtimestamp(at, _dt.UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")


class ExceptionTake:
    """What one flush merges: per fingerprint ``[count, first_at, last_at, type,
    message]`` (unix times; message "" when not yet known), and the captures waiting for
    their claim, for a spec whose captures stop at ``first`` per fingerprint."""

    __slots__ = ("captures", "counts", "first", "name")

    def __init__(
        self, counts: dict[str, list[Any]], captures: list[dict[str, Any]], first: int, name: str
    ) -> None:
        self.counts = counts
        self.captures = captures
        self.first = first
        self.name = name


class ExceptionAggregate(Aggregate):
    """The counts and pending captures of one exception instrument in this process."""

    kind = "exception"

    def __init__(self, origin: Origin, name: str, first: int) -> None:
        super().__init__(origin)
        self.name = name
        self.first = first
        self.lock = threading.Lock()
        #: fingerprint -> raises seen in this process (bounded: see MAX_FINGERPRINTS)
        self.totals: dict[str, int] = {}
        #: fingerprints captured ``first`` times across the fleet (Redis says so)
        self.full: set[str] = set()
        #: True once registered with the flusher (the instrument of a spec that raised)
        self.fleet = False
        #: captures that won their claim, and those that lost it
        self.won = self.lost = 0
        # The instrument's method called with each capture that won its claim, held
        # weakly: the flusher holds this aggregate until the instrument is gone.
        self._on_won: weakref.WeakMethod[Any] | None = None
        self._window: dict[str, list[Any]] = {}
        self._pending: list[dict[str, Any]] = []
        self._sent: ExceptionTake | None = None

    def on_won(self, callback: Any) -> None:
        """Call callback (a bound method, held weakly) with each capture that won."""
        self._on_won = weakref.WeakMethod(callback)

    def add(self, fingerprint: str, cls: type, at: float) -> tuple[str, bool]:
        """Count one raise of an exception of type cls; return the fingerprint it counts
        under (OVERFLOW past the bound) and whether it is the first of its fingerprint
        since the last take (its message is then wanted: see describe)."""
        with self.lock:
            totals = self.totals
            total = totals.get(fingerprint)
            if total is None and len(totals) >= MAX_FINGERPRINTS:
                fingerprint = OVERFLOW
                total = totals.get(OVERFLOW)
            totals[fingerprint] = (total or 0) + 1
            if not self.fleet:
                return fingerprint, False
            entry = self._window.get(fingerprint)
            if entry is None:
                if fingerprint == OVERFLOW:
                    self._window[fingerprint] = [1, at, at, OVERFLOW_TYPE, OVERFLOW_MESSAGE]
                    return fingerprint, False
                self._window[fingerprint] = [1, at, at, framing.type_name(cls), ""]
                return fingerprint, True
            entry[0] += 1
            entry[2] = at
            return fingerprint, False

    def describe(self, fingerprint: str, message: str) -> None:
        """Set the message of a fingerprint counted since the last take."""
        with self.lock:
            entry = self._window.get(fingerprint)
            if entry is not None:
                entry[4] = message

    def pending(self, fingerprint: str) -> int | None:
        """Return the captures of fingerprint waiting for their claim, or None when no
        more may wait (MAX_PENDING)."""
        with self.lock:
            if len(self._pending) >= MAX_PENDING:
                return None
            return sum(1 for c in self._pending if c["fingerprint"] == fingerprint)

    def hold(self, capture: dict[str, Any]) -> None:
        """Keep a capture until the next flush claims it."""
        with self.lock:
            self._pending.append(capture)

    def take(self) -> ExceptionTake | None:
        with self.lock:
            if not self._window and not self._pending:
                return None
            take = ExceptionTake(self._window, self._pending, self.first, self.name)
            self._window, self._pending = {}, []
        self._sent = take
        return take

    def taken(self, reply: Any) -> None:
        """Learn from Redis which fingerprints are full and which captures won."""
        take, self._sent = self._sent, None
        if not isinstance(reply, list | tuple) or len(reply) != 3:
            return
        _written, full, won = reply
        for fingerprint in full or ():
            if len(self.full) <= MAX_FINGERPRINTS:
                self.full.add(_text(fingerprint))
        captures = take.captures if take is not None else []
        callback = self._on_won() if self._on_won is not None else None
        for index in won or ():
            if isinstance(index, int) and 0 < index <= len(captures):
                self.won += 1
                if callback is not None:
                    callback(captures[index - 1])
        self.lost += max(0, len(captures) - len(won or ()))

    def reset(self) -> None:
        # A forked child: the parent's counts are the parent's to flush; no lock is waited on.
        self.lock = threading.Lock()
        self._window, self._pending, self._sent = {}, [], None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _positive_int(custom: dict[str, Any], key: str, default: int) -> int:
    value = custom.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"custom.{key} must be a positive integer, not {value!r}")
    return value


class ExceptionInstrument(Instrument):
    """Count the exceptions that propagate out of the target, by fingerprint, and capture
    the first few of each (see the module docstring).

    ``custom["frames"]`` (default 5) frames are captured, innermost last;
    ``custom["first"]`` (default 3) captures are made per fingerprint (across the fleet
    for the instrument of a spec); ``rate`` caps the captures per second in this process
    (counting is never limited). ``value``, when given, is a condition on the event's
    names (``result`` is the exception): only exceptions for which it is true count.
    Only exceptions (``Exception`` subclasses) count: not a cancellation, an exit, or a
    generator's close. ``counts`` holds the raises seen here per fingerprint, ``captures``
    the latest captures emitted, ``last`` the latest.
    """

    extra_names = frozenset({"result"})
    raises_only = True

    def __init__(self, name: str, value: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(name, value or "True", *args, **kwargs)
        if self.event != "return":
            raise ValueError(
                f"an exception instrument fires when the target raises: its event is "
                f"return, not {self.event!r}"
            )
        self.fingerprints = framing.Fingerprints()
        self.aggregate = ExceptionAggregate(Origin("", "exception"), name, DEFAULT_FIRST)
        self.aggregate.on_won(self._won)
        self.captures: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self.last: dict[str, Any] | None = None
        self._claimed: dict[str, int] = {}
        self._capture_rate: float | None = None
        self._ring: list[float] | None = None
        self._slot = 0
        self._period = 1.0
        self._configure()
        rate = self.custom.get("rate")
        self.rate = rate if isinstance(rate, int | float) and rate > 0 else None

    def _configure(self) -> None:
        self.frames = _positive_int(self.custom, "frames", DEFAULT_FRAMES)
        first = _positive_int(self.custom, "first", DEFAULT_FIRST)
        if first != getattr(self, "first", first):
            # Another K: which fingerprints are full is for Redis to say again.
            self.aggregate.full.clear()
            self._claimed.clear()
        self.first = first
        self.aggregate.first = first
        self.aggregate.name = self.name

    # The rate limits captures, not events: every raise is counted, so the gate must never
    # drop one (its ring stays None).
    @property
    def rate(self) -> float | None:
        """Captures per second this instrument makes at most in this process (None: no
        limit); raises are counted whatever the rate."""
        return self._capture_rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._capture_rate = value
        if value is None:
            self._ring = None
        else:
            self._ring = [-math.inf] * max(1, math.floor(value))
            self._period = 1.0 if value >= 1 else 1.0 / value
        self._slot = 0
        self.stats.set_rate(None)

    def update(self, **settings: Any) -> None:
        super().update(**settings)
        self.stats.set_rate(None)
        self._configure()

    @property
    def counts(self) -> dict[str, int]:
        """Raises seen in this process, per fingerprint."""
        with self.aggregate.lock:
            return dict(self.aggregate.totals)

    def _admit_capture(self) -> bool:
        ring = self._ring
        if ring is None:
            return True
        now = time.perf_counter()
        slot = self._slot if self._slot < len(ring) else 0
        if now - ring[slot] < self._period:
            return False
        ring[slot] = now
        self._slot = slot + 1 if slot + 1 < len(ring) else 0
        return True

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        exc = _locals.get("result")
        if not isinstance(exc, Exception):
            return
        if self.value != "True" and not self.evaluate(self.value, _globals, _locals):
            return
        cls = type(exc)
        fingerprint = self.fingerprints.of(cls, exc.__traceback__)
        aggregate = self.aggregate
        if self.origin is not None and not aggregate.fleet:
            self._join_fleet()
        at = time.time()
        fingerprint, describe = aggregate.add(fingerprint, cls, at)
        if fingerprint == OVERFLOW:
            return
        message: str | None = None
        if describe:
            message = self._message(exc, framing.past_wrappers(exc.__traceback__))
            aggregate.describe(fingerprint, message)
        if aggregate.fleet:
            if fingerprint in aggregate.full:
                return
            waiting = aggregate.pending(fingerprint)
            if waiting is None:
                self.stats.dropped += 1
                return
            if waiting >= self.first:
                return
        elif self._claimed.get(fingerprint, 0) >= self.first:
            return
        if not self._admit_capture():
            self.stats.dropped += 1
            return
        tb = framing.past_wrappers(exc.__traceback__)
        if message is None:
            message = self._message(exc, tb)
        capture = self._capture(fingerprint, framing.type_name(cls), message, tb, at)
        if aggregate.fleet:
            aggregate.hold(capture)
        else:
            self._claimed[fingerprint] = self._claimed.get(fingerprint, 0) + 1
            self._won(capture)

    def _join_fleet(self) -> None:
        """Start flushing this instrument's counts (the instrument of a spec that raised),
        until it is gone."""
        aggregate = self.aggregate
        origin = self.origin
        if origin is None:
            return
        aggregate.origin = origin
        aggregate.fleet = True
        AGGREGATES.add(aggregate)
        weakref.finalize(self, AGGREGATES.retire, aggregate)

    def _message(self, exc: BaseException, tb: TracebackType | None) -> str:
        try:
            return framing.message(exc, tb)
        except Exception:
            self.stats.errors += 1
            return f"<message not captured: {framing.type_name(type(exc))}>"

    def _capture(
        self,
        fingerprint: str,
        type_name: str,
        message: str,
        tb: TracebackType | None,
        at: float,
    ) -> dict[str, Any]:
        capture: dict[str, Any] = {
            "fingerprint": fingerprint,
            "type": type_name,
            "message": message,
            "at": iso(at),
        }
        try:
            capture["frames"], failures = framing.capture_frames(tb, self.frames)
        except Exception as exc:
            capture["frames"], failures = [], 1
            capture["@error"] = f"frames not captured: {type(exc).__name__}"
        if failures:
            self.stats.errors += failures
        return capture

    def _won(self, capture: dict[str, Any]) -> None:
        """Keep and write a capture that is to be shown (its claim won, or no fleet)."""
        self.last = capture
        self.captures.append(capture)
        if self.origin is not None and not OUTBOX.to_stdout():
            return
        self.emit(self.name, capture)

    def emit(self, name: str, capture: dict[str, Any]) -> None:
        """Write a capture where log lines go (LogInstrument.logger or .out)."""
        line = f"Exception ({name}) = {snapshots.to_json(capture)}"
        write_line(line, LogInstrument.logger, LogInstrument.out)
