"""Did a spec change? The one answer, for the manager and the Redis subscriber alike.

A spec changed when any of its fields other than ``applied`` did. spec_key() takes a
snapshot: nested dicts and lists are copied into tuples, so a key kept from the last apply
still differs after someone edits the spec's ``instrument`` dict in place. Dicts compare
whatever their order, numbers by value (``1 == 1.0``), datetimes as instants (a naive one
is UTC).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from ._time import to_utc

__all__ = ("spec_changed", "spec_key")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        items = [(_freeze(k), _freeze(v)) for k, v in value.items()]
        return ("map", frozenset(items) if _hashable(items) else tuple(sorted(items, key=repr)))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(_freeze(v) for v in value))
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    return value


def _hashable(items: list[tuple[Any, Any]]) -> bool:
    try:
        hash(tuple(items))
    except TypeError:
        return False
    return True


def spec_key(spec: Any) -> Any:
    """Return a snapshot of what makes a spec's instrument (every field but ``applied``);
    two specs changed apart when their keys differ. None for what is not a mapping."""
    if not isinstance(spec, Mapping):
        return None
    return _freeze({k: v for k, v in spec.items() if k != "applied"})


def spec_changed(a: Any, b: Any) -> bool:
    """Tell whether spec b differs from spec a (None meaning no spec)."""
    if a is None or b is None:
        return a is not b
    return bool(spec_key(a) != spec_key(b))
