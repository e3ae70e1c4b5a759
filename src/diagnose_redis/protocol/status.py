"""A process's status field for one spec: JSON text a person reads with redis-cli,
``{"lm", "err", "at", "fired", "dropped", "errors"}``."""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from typing import Any

from diagnose.clock import to_utc

__all__ = (
    "COUNTS",
    "StatusField",
    "applied_mark",
    "decode_status_field",
    "encode_status_field",
    "with_counts",
)


def _iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat()


def _from_iso(value: object) -> _dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return to_utc(_dt.datetime.fromisoformat(value))
    except ValueError:
        return None


COUNTS = ("fired", "dropped", "errors")


def encode_status_field(
    lastmodified: _dt.datetime | None,
    error: str | None,
    at: _dt.datetime,
    counts: Mapping[str, int] | None = None,
) -> str:
    """Encode one status hash field: JSON ``{"lm": ISO, "err": null|text, "at": ISO,
    "fired": N, "dropped": N, "errors": N}``."""
    # Written by hand, exactly as json.dumps() writes the dict (the summary finds the
    # "lm"/"err" prefix in the raw text): every subscriber encodes one at each publish.
    return StatusField.of(lastmodified, error, at).text(counts or {})


class StatusField(str):
    """A status field's JSON text (with zero counts) that keeps its text but the counts
    (``head``): a subscriber formats it once, when the spec's outcome changes, and puts
    the counts in at each write (``text()``)."""

    head: str

    @classmethod
    def of(
        cls, lastmodified: _dt.datetime | None, error: str | None, at: _dt.datetime
    ) -> StatusField:
        """Return the field of this outcome (see encode_status_field)."""
        lm = "null" if lastmodified is None else f'"{to_utc(lastmodified).isoformat()}"'
        err = "null" if error is None else json.dumps(error)
        head = f'{{"lm": {lm}, "err": {err}, "at": "{to_utc(at).isoformat()}"'
        field = cls(head + _counts({}))
        field.head = head
        return field

    def text(self, counts: Mapping[str, int]) -> str:
        """Return the field's JSON text with these counts."""
        return self.head + _counts(counts)


def _counts(counts: Mapping[str, int]) -> str:
    """Return the end of a field: its counts, and the closing brace."""
    count = counts.get
    return (
        f', "fired": {int(count("fired", 0))}, "dropped": {int(count("dropped", 0))}, '
        f'"errors": {int(count("errors", 0))}}}'
    )


# How a field encode_status_field() wrote ends: its counts. The error text before them is a
# JSON string, in which a quote is escaped: nothing in it can end the field so.
_COUNTS_AT_END = re.compile(r', "fired": -?\d+, "dropped": -?\d+, "errors": -?\d+\}')


def applied_mark(lastmodified: _dt.datetime) -> bytes:
    """Return how a status field written by encode_status_field() for this lastmodified,
    applied without error, begins: the summary counts such fields without parsing them."""
    return f'{{"lm": "{to_utc(lastmodified).isoformat()}", "err": null'.encode()


def with_counts(raw: str, counts: Mapping[str, int]) -> str:
    """Return a status field's JSON text with its counts replaced (without parsing it when
    encode_status_field() wrote it)."""
    end = raw.rfind(', "fired": ')
    if end >= 0 and _COUNTS_AT_END.fullmatch(raw, end):
        return raw[:end] + _counts(counts)
    field = json.loads(raw)
    for name in COUNTS:
        field[name] = int(counts.get(name, 0))
    return json.dumps(field)


def decode_status_field(raw: str | bytes) -> dict[str, Any]:
    """Decode one status hash field into ``{"lm": datetime|None, "err": str|None, "at": ...}``."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        return {"lm": None, "err": f"unreadable status field: {raw!r:.200}", "at": None}
    err = obj.get("err")
    field: dict[str, Any] = {
        "lm": _from_iso(obj.get("lm")),
        "err": None if err is None else str(err),
        "at": _from_iso(obj.get("at")),
    }
    for name in COUNTS:
        count = obj.get(name)
        field[name] = count if isinstance(count, int) and not isinstance(count, bool) else 0
    return field
