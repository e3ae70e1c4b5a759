"""The safe policy's verdicts kept by expression text, in bounded memos.

Invariant: a verdict (the code of an accepted expression, or its refusal) is reused only for
the same text, the same policy, the same allowlist generation (allow() moves it) and the same
redaction list: nothing kept outlives a change that could turn a refusal into an acceptance
or back. A memo never holds more than its size (the least recently used goes first), so
what a process keeps stays the same however many distinct expressions it sees.
"""

from __future__ import annotations

import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from diagnose._output import redaction
from diagnose.exceptions import ExpressionRefused

__all__ = ("FILENAME", "Memo", "Verdicts", "renamed")

#: The filename of kept code; renamed() files it under its instrument's.
FILENAME = "<expression>"


class Memo:
    """A map of at most size entries; get() marks an entry used, put() drops the oldest.
    Thread-safe (the target's threads compile expressions too): put() under a lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> Any:
        """Return the value kept for key, or None."""
        # Each call on the OrderedDict is one step under the GIL: no lock needed to read.
        value = self._entries.get(key)
        if value is not None:
            try:
                self._entries.move_to_end(key)
            except KeyError:
                pass  # dropped by another thread meanwhile
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Keep value (not None) for key."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class Verdicts:
    """One policy's verdicts by (expression, what), reached by ``judge(expr, filename,
    what)``, which returns the code or raises ExpressionRefused."""

    def __init__(self, judge: Callable[[str, str, str], types.CodeType], size: int) -> None:
        self._judge = judge
        # (expr, what) -> (generation, redaction names, code or the refusal)
        self._kept = Memo(size)

    def __len__(self) -> int:
        return len(self._kept)

    def code(self, expr: str, what: str, generation: int) -> types.CodeType:
        """Return expr's code (filed under FILENAME), or raise its refusal."""
        key = (expr, what)
        names = redaction.names()
        kept = self._kept.get(key)
        if kept is not None and kept[0] == generation and kept[1] is names:
            outcome = kept[2]
        else:
            try:
                outcome = self._judge(expr, FILENAME, what)
            except ExpressionRefused as exc:
                outcome = _Refusal(exc.args)  # its text, not the frames of its traceback
            self._kept.put(key, (generation, names, outcome))
        if isinstance(outcome, _Refusal):
            raise ExpressionRefused(*outcome.args)
        return outcome


class _Refusal(NamedTuple):
    """A kept refusal: the arguments of its ExpressionRefused."""

    args: tuple[Any, ...]


def renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """Return code (and the code objects it holds) filed under filename."""
    consts = code.co_consts
    for c in consts:
        if isinstance(c, types.CodeType):  # a comprehension's or a lambda's code
            consts = tuple(
                renamed(c, filename) if isinstance(c, types.CodeType) else c for c in consts
            )
            break
    return code.replace(co_filename=filename, co_consts=consts)
