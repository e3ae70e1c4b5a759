"""Hotspots: time each line of one call of a target, for return instruments that ask.

``hotspots.worst`` is the line with the most time in total in the call, ``slowest`` the
single slowest run of a line; each a CallTime(time, lineno, source). Timed through
sys.settrace for the one call, then the previous trace function is restored.
"""

from __future__ import annotations

import linecache
import sys
import time
from collections import namedtuple
from collections.abc import Iterable
from typing import Any

__all__ = ("CallTime", "Hotspots")

_time = time.time

CallTime = namedtuple("CallTime", ["time", "lineno", "source"])


class Hotspots:
    """Time each line of one call of the target: ``worst`` (total) and ``slowest`` (single)."""

    def __init__(self, codes: Iterable[Any]) -> None:
        self._codes = frozenset(codes)
        self._previous: Any = None
        self._last_line: int | None = None
        self._last_time = 0.0
        self.filename: str | None = None
        self.calls: dict[int, list[float]] = {}
        self.worst = self.slowest = CallTime(None, None, None)

    def start(self) -> Hotspots:
        """Start timing lines (through sys.settrace, restored by stop())."""
        self._previous = sys.gettrace()
        sys.settrace(self._on_call)
        return self

    def _on_call(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code in self._codes and self.filename is None:
            self.filename = frame.f_code.co_filename
            return self._on_line
        return None

    def _on_line(self, frame: Any, event: str, arg: Any) -> Any:
        now = _time()
        if self._last_line is not None:
            spent = now - self._last_time
            record = self.calls.get(self._last_line)
            if record is None:
                self.calls[self._last_line] = [1, spent, spent]
            else:
                record[0] += 1
                record[1] = max(record[1], spent)
                record[2] += spent
        self._last_line = frame.f_lineno if event == "line" else None
        self._last_time = _time()
        return self._on_line

    def stop(self) -> Hotspots:
        """Stop timing, restore the previous trace function, and compute the results."""
        sys.settrace(self._previous)
        self._previous = None
        if self.calls:
            worst = max((rec[2], line) for line, rec in self.calls.items())
            slowest = max((rec[1], line) for line, rec in self.calls.items())
            self.worst = CallTime(worst[0], worst[1], self.source(worst[1]))
            self.slowest = CallTime(slowest[0], slowest[1], self.source(slowest[1]))
        return self

    def source(self, lineno: int) -> str:
        return linecache.getline(self.filename or "", lineno)

    def __repr__(self) -> str:
        return f"Hotspots(worst={self.worst}, slowest={self.slowest})"
