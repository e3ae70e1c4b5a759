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


# Values that are their own snapshot: most of a spec, returned at once.
_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def _freeze(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is dict or isinstance(value, Mapping):
        items = [
            (k if type(k) in _ATOMS else _freeze(k), v if type(v) in _ATOMS else _freeze(v))
            for k, v in value.items()
        ]
        try:
            return ("map", frozenset(items))
        except TypeError:  # an unhashable value (a bytearray): compared in a stable order
            return ("map", tuple(sorted(items, key=repr)))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(_freeze(v) for v in value))
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    return value


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
    if a is b:
        return False
    # The common change, a new version of a spec, shows in lastmodified: no snapshot needed.
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        before, after = a.get("lastmodified"), b.get("lastmodified")
        if (
            isinstance(before, _dt.datetime)
            and isinstance(after, _dt.datetime)
            and to_utc(before) != to_utc(after)
        ):
            return True
    return bool(spec_key(a) != spec_key(b))
