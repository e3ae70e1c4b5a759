"""Render a value as the text a log line shows: ``str(value)``, bounded, with secrets
redacted inside builtin containers at any depth."""

from __future__ import annotations

from typing import Any

from diagnose._output.redaction import REDACTED, is_secret

__all__ = ("render",)


class _Full(Exception):
    """The rendered text has reached its limit: stop walking."""


_CYCLE: dict[type, str] = {
    dict: "{...}",
    list: "[...]",
    tuple: "(...)",
    set: "set(...)",
    frozenset: "frozenset(...)",
}
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}
_PLAIN_REPR: dict[type, Any] = {
    dict: dict.__repr__,
    list: list.__repr__,
    tuple: tuple.__repr__,
    set: set.__repr__,
    frozenset: frozenset.__repr__,
}


# Exact types whose str() holds nothing to redact (the common values of a log line).
_SCALARS = frozenset({int, float, bool, type(None), complex})


def _container_kind(value: Any) -> type | None:
    """Return the builtin container type whose repr value uses, or None."""
    for base, rep in _PLAIN_REPR.items():
        if isinstance(value, base) and type(value).__repr__ is rep:
            return base
    return None


class _Writer:
    __slots__ = ("active", "limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.active: set[int] = set()  # ids of the containers being written (cycles)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def room(self) -> int:
        return self.limit - self.size + 1

    def scalar(self, value: Any) -> None:
        if value is REDACTED:
            self.add("<redacted>")
        elif type(value) in (str, bytes) and len(value) > self.room():
            # Never repr a huge string to keep its first characters.
            self.add(repr(value[: self.room()]))
        else:
            self.add(repr(value))

    def value(self, value: Any) -> None:
        kind = _container_kind(value)
        if kind is None:
            self.scalar(value)
            return
        if id(value) in self.active:
            self.add(_CYCLE[kind])
            return
        self.active.add(id(value))
        try:
            self.container(kind, value)
        finally:
            self.active.discard(id(value))

    def container(self, kind: type, value: Any) -> None:
        if kind is dict:
            self.add("{")
            for i, (key, item) in enumerate(value.items()):
                if i:
                    self.add(", ")
                self.value(key)
                self.add(": ")
                if is_secret(key):
                    self.add("<redacted>")
                else:
                    self.value(item)
            self.add("}")
            return
        if kind in (set, frozenset) and not value:
            self.add(f"{kind.__name__}()")
            return
        opening, closing = _BRACKETS[kind]
        self.add(opening)
        for i, item in enumerate(value):
            if i:
                self.add(", ")
            self.value(item)
        if kind is tuple and len(value) == 1:
            self.add(",")
        self.add(closing)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def render(value: Any, limit: int = 2000) -> str:
    """Return the text a log line shows for value, at most limit characters.

    It is ``str(value)`` (cut to limit, ending in "..." when cut), except that inside
    builtin containers (dict, list, tuple, set, frozenset, and subclasses that keep their
    repr), at any depth, a dict entry whose key is a secret name shows ``<redacted>`` as
    its value, and REDACTED shows ``<redacted>``. The walk stops once limit characters are
    written, so a huge value costs no more than its first limit characters; a container
    holding itself shows ``[...]`` as str() does.
    """
    kind = type(value)
    if kind is str:
        return _cut(value, limit)
    if kind in _SCALARS:
        return _cut(str(value), limit)
    if kind is bytes:  # never the text of huge bytes, to keep its first characters
        return _cut(str(value[: limit + 1]), limit)
    if value is REDACTED:
        return _cut("<redacted>", limit)
    if _container_kind(value) is None:
        return _cut(str(value), limit)
    writer = _Writer(limit)
    try:
        writer.value(value)
    except _Full:
        pass
    return _cut("".join(writer.parts), limit)
