"""A snapshot: the state an event offers, as JSON-ready data of bounded size and cost.

Bounds: depth 3, 100 items per collection, 20 fields per object, strings of 255
characters, 32 KiB in all; what a bound cuts says ``"@truncated"``. Invariant: the walk
never calls user code (no ``__repr__``, no property) and redacts secret names.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import itertools
import json
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any

from diagnose._output.redaction import REDACTED, is_secret

__all__ = ("MAX_BYTES", "capture", "to_json")

MAX_DEPTH = 3
MAX_ITEMS = 100
MAX_FIELDS = 20
MAX_STRING = 255
MAX_BYTES = 32 * 1024
_REDACTED = "<redacted>"
# Types whose str() is plain data and runs no user code.
_TEXT_TYPES = (
    _dt.datetime,
    _dt.date,
    _dt.time,
    _dt.timedelta,
    _dt.timezone,
    decimal.Decimal,
    uuid.UUID,
    pathlib.PurePath,
    complex,
)
_SEQUENCES = (list, tuple, set, frozenset)


class _Full(Exception):
    """The snapshot reached MAX_BYTES."""


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _Walker:
    __slots__ = ("active", "limit", "size", "truncated")

    def __init__(self, limit: int = MAX_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self.active: set[int] = set()
        self.truncated = False

    def charge(self, n: int) -> None:
        self.size += n
        if self.size > self.limit:
            self.truncated = True
            raise _Full

    def string(self, text: str) -> str:
        if len(text) > MAX_STRING:
            self.truncated = True
            text = text[:MAX_STRING] + "…"
        self.charge(len(text) + 2)
        return text

    def value(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            self.charge(5)
            return value
        if value is REDACTED:
            return self.string(_REDACTED)
        cls = type(value)
        if cls is int:
            if -(2**63) <= value < 2**63:
                self.charge(20)
                return value
            return self.string(f"<int of {value.bit_length()} bits>")
        if cls is float:
            self.charge(24)
            return value if value == value and abs(value) != float("inf") else str(value)
        if cls is str:
            return self.string(value)
        if cls in (bytes, bytearray):
            return self.string(repr(bytes(value[: MAX_STRING + 1])))
        if isinstance(value, enum.Enum):
            return self.string(f"{_type_name(value)}.{value.name}")
        if isinstance(value, _TEXT_TYPES):
            return self.string(str(value))
        if depth >= MAX_DEPTH:
            self.truncated = True
            return self.string(f"<{_type_name(value)}>")
        if id(value) in self.active:
            return self.string(f"<cycle: {_type_name(value)}>")
        self.active.add(id(value))
        try:
            if isinstance(value, Mapping) and cls.__module__ == "builtins":
                return self.mapping(value, depth)
            if isinstance(value, _SEQUENCES) and cls.__module__ == "builtins":
                return self.sequence(value, depth)
            return self.obj(value, depth)
        finally:
            self.active.discard(id(value))

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.charge(2)
        for key, item in itertools.islice(value.items(), MAX_ITEMS):
            name = key if isinstance(key, str) else self.key_text(key)
            name = self.string(name)
            out[name] = self.string(_REDACTED) if is_secret(key) else self.value(item, depth + 1)
        if len(value) > MAX_ITEMS:
            self.truncated = True
            out["@truncated"] = f"{len(value) - MAX_ITEMS} more items"
        return out

    def key_text(self, key: Any) -> str:
        if key is None or isinstance(key, bool | int | float | _TEXT_TYPES):
            return str(key)
        return f"<{_type_name(key)}>"

    def sequence(self, value: Any, depth: int) -> list[Any]:
        self.charge(2)
        out = [self.value(item, depth + 1) for item in itertools.islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            self.truncated = True
            out.append(f"@truncated: {len(value) - MAX_ITEMS} more items")
        return out

    def obj(self, value: Any, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {"@type": self.string(_type_name(value))}
        fields = _fields(value)
        for name, item in itertools.islice(fields, MAX_FIELDS):
            name = self.string(name)
            out[name] = self.string(_REDACTED) if is_secret(name) else self.value(item, depth + 1)
        if next(fields, None) is not None:
            self.truncated = True
            out["@truncated"] = "more fields"
        return out


def _fields(value: Any) -> Any:
    """Yield (name, value) of the public fields an object holds, without running user code
    (no property, no __getattr__)."""
    try:
        held = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        held = None
    if isinstance(held, dict):
        for name, item in held.items():
            if isinstance(name, str) and not name.startswith("_"):
                yield name, item
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name.startswith("_"):
                continue
            try:
                yield name, object.__getattribute__(value, name)
            except AttributeError:
                continue


def capture(names: Mapping[str, Any], *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Return the snapshot of an event's names (argument and local names to values), of
    about max_bytes at most (several snapshots that share MAX_BYTES pass their part)."""
    walker = _Walker(max_bytes)
    out: dict[str, Any] = {}
    try:
        for name, value in names.items():
            out[walker.string(name)] = (
                walker.string(_REDACTED) if is_secret(name) else walker.value(value, 0)
            )
    except _Full:
        pass
    if walker.truncated:
        out["@truncated"] = True
    return out


def to_json(snapshot: dict[str, Any]) -> str:
    """Return the snapshot as compact JSON text (at most about MAX_BYTES)."""
    return json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"), default=str)
