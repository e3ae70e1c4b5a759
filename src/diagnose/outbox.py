"""The outbox: what the instruments of specs emit, held in memory until a subscriber sends it.

Invariant: the target's thread never does I/O for probe output and never waits; the outbox
is bounded in entries and bytes, and what does not fit is dropped and counted per spec.
``DIAGNOSE_OUTPUT`` says where spec output goes (``stdout,redis``, ``stdout``, ``redis``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from diagnose._output.redaction import is_secret
from diagnose._output.render import render
from diagnose.fork import LOCKS, after_fork_in_child

__all__ = (
    "MAX_BYTES",
    "MAX_ENTRIES",
    "OUTBOX",
    "Entry",
    "Origin",
    "NO_TAGS",
    "Outbox",
    "output_targets",
    "stream_tags",
)

#: Entries the outbox holds at most, and their values' characters in all (about bytes).
MAX_ENTRIES = 10_000
MAX_BYTES = 8 * 1024 * 1024
#: Characters of one tag's value in the stream at most.
TAG_CHARS = 200
_OUTPUTS = ("stdout", "redis")
NO_TAGS: Mapping[str, Any] = MappingProxyType({})


class Origin(NamedTuple):
    """The spec an instrument was made from: its ID and instrument type."""

    spec: str
    type: str


class Entry(NamedTuple):
    """One thing an instrument emitted: ``value`` is text (JSON for snapshots), ``tags`` a
    dict of JSON-ready values, ``at`` unix time; ``type`` is the instrument's, or "error"."""

    spec: str
    type: str
    name: str
    value: str
    tags: Mapping[str, Any]
    at: float


def output_targets(text: str | None) -> frozenset[str]:
    """Read DIAGNOSE_OUTPUT ("stdout,redis", "stdout", "redis"); raise ValueError if bad."""
    if text is None or not text.strip():
        return frozenset(_OUTPUTS)
    chosen = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = chosen - set(_OUTPUTS)
    if unknown or not chosen:
        raise ValueError(
            f"DIAGNOSE_OUTPUT must be stdout, redis or both (stdout,redis), not {text!r}"
        )
    return chosen


def stream_tags(tags: Mapping[Any, Any]) -> Mapping[str, Any]:
    """Return an instrument's tags as the stream holds them: JSON-ready, secret-named keys'
    values ``<redacted>``, numbers as they are, anything else as its redacted text."""
    if not tags:
        return NO_TAGS
    out: dict[str, Any] = {}
    for key, value in tags.items():
        if is_secret(key):
            value = "<redacted>"
        elif not (
            value is None
            or type(value) is bool
            or (type(value) is int and -(2**63) <= value < 2**63)
            or (type(value) is float and math.isfinite(value))
        ):
            value = render(value, TAG_CHARS)
        out[str(key)] = value
    return out


class Outbox:
    """A bounded buffer of Entries between the instruments and the one sender."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[Entry] = deque(maxlen=max_entries)
        # Characters appended and taken: their difference is what the outbox holds. Each
        # counter has one kind of writer (appenders, the sender), so races cost a count,
        # not a drift that grows: take() re-bases them whenever the outbox is empty.
        self._bytes_in = 0
        self._bytes_out = 0
        #: entries dropped because the outbox was full, per spec ID
        self.dropped: dict[str, int] = {}
        #: True while a sender takes the entries (see open())
        self.enabled = False
        try:
            targets = output_targets(os.environ.get("DIAGNOSE_OUTPUT"))
        except ValueError as exc:
            logging.getLogger("diagnose").warning("%s; using stdout,redis", exc)
            targets = frozenset(_OUTPUTS)
        #: whether spec output goes to stdout (DIAGNOSE_OUTPUT); see to_stdout()
        self.stdout = "stdout" in targets
        #: whether spec output goes to the output stream (DIAGNOSE_OUTPUT)
        self.stream = "redis" in targets
        #: called (with no argument) when the outbox gets its first entry (the sender may
        #: sleep while it is empty) and when it holds a batch worth sending
        self.on_batch: Any = None
        self.batch = 100

    def open(self, on_batch: Any = None) -> bool:
        """Start keeping entries for a sender; return False if DIAGNOSE_OUTPUT leaves the
        stream out (nothing is kept then)."""
        if not self.stream:
            return False
        self.on_batch = on_batch
        self.enabled = True
        return True

    def close(self) -> None:
        """Stop keeping entries (those held stay until taken or cleared)."""
        self.enabled = False
        self.on_batch = None

    def to_stdout(self) -> bool:
        """Return True when spec output should also be written to stdout."""
        return self.stdout or not self.enabled

    def put(self, origin: Origin, name: str, value: str, tags: Mapping[str, Any]) -> None:
        """Add what an instrument of a spec emitted (text, redacted); never blocks."""
        if not self.enabled:
            return
        entries = self._entries
        held = len(entries)
        if held >= self.max_entries or self._bytes_in - self._bytes_out >= self.max_bytes:
            spec = origin.spec
            self.dropped[spec] = self.dropped.get(spec, 0) + 1
            return
        entries.append(Entry(origin.spec, origin.type, name, value, tags, time.time()))
        self._bytes_in += len(value)
        if held == 0 or held + 1 == self.batch:
            callback = self.on_batch
            if callback is not None:
                callback()

    def error(self, origin: Origin, name: str, text: str) -> None:
        """Add an instrument's runtime error (type "error")."""
        self.put(Origin(origin.spec, "error"), name, text, {})

    def take(self, most: int) -> list[Entry]:
        """Remove and return up to most entries, oldest first (the sender's side)."""
        entries = self._entries
        taken: list[Entry] = []
        size = 0
        try:
            for _ in range(most):
                entry = entries.popleft()
                taken.append(entry)
                size += len(entry.value)
        except IndexError:
            pass
        if entries:
            self._bytes_out += size
        else:
            self._bytes_out = self._bytes_in
        return taken

    def __len__(self) -> int:
        return len(self._entries)

    def dropped_counts(self) -> dict[str, int]:
        """Return the entries dropped so far because the outbox was full, per spec ID."""
        return dict(self.dropped)

    def clear(self) -> None:
        """Forget every entry held and every count (a forked child starts afresh)."""
        self._entries = deque(maxlen=self.max_entries)
        self._bytes_in = self._bytes_out = 0
        self.dropped = {}


#: The process's outbox.
OUTBOX = Outbox()


@after_fork_in_child(LOCKS)
def _after_fork_in_child() -> None:
    # The parent's entries are the parent's to send; the child's subscriber opens the
    # outbox again when it starts.
    OUTBOX.close()
    OUTBOX.clear()
