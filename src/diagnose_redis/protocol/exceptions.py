"""The aggregates of an exception spec in Redis: how the subscribers' flusher writes them
and ``coordinator exceptions`` reads them.

With ``K = Keys.exceptions(ID)``:

- ``K.counts``: sorted set, fingerprint -> raises counted across the fleet;
- ``K.about``: hash, per fingerprint ``FP:type``, ``FP:message`` (of a recent raise),
  ``FP:first`` and ``FP:last`` (unix milliseconds of the first and the last raise seen),
  ``FP:processes`` (how many processes saw it) and ``FP:claimed`` (captures claimed, at
  most the spec's ``first``);
- ``K.seen``: hash, ``FP:PROCESS`` -> raises of FP in that process;
- ``K.captures``: hash, ``FP:N`` -> the Nth capture of FP as JSON (N from 1 to claimed).

A fingerprint is always FINGERPRINT_CHARS characters, so a field splits there. The four
keys have the spec key's TTL (set at each merge and each publish) and go with its removal.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = (
    "ABOUT_FIELDS",
    "FINGERPRINT_CHARS",
    "MAX_FLEET_FINGERPRINTS",
    "OVERFLOW",
    "about_field",
    "capture_field",
    "from_ms",
    "split_field",
)

FINGERPRINT_CHARS = 16
#: The fingerprint under which raises past the bounds are counted (in a process, or here).
OVERFLOW = "0" * FINGERPRINT_CHARS
#: Fingerprints one spec tells apart across the fleet; the others count under OVERFLOW.
MAX_FLEET_FINGERPRINTS = 10_000
ABOUT_FIELDS = ("type", "message", "first", "last", "processes", "claimed")


def about_field(fingerprint: str, name: str) -> str:
    """Return the field of ``K.about`` holding one thing known of a fingerprint."""
    return f"{fingerprint}:{name}"


def capture_field(fingerprint: str, n: int) -> str:
    """Return the field of ``K.captures`` holding a fingerprint's nth capture (from 1)."""
    return f"{fingerprint}:{n}"


def split_field(field: str | bytes) -> tuple[str, str]:
    """Return (fingerprint, rest) of a field of ``K.about``, ``K.seen`` or ``K.captures``."""
    text = field.decode("utf-8", "replace") if isinstance(field, bytes) else str(field)
    return text[:FINGERPRINT_CHARS], text[FINGERPRINT_CHARS + 1 :]


def from_ms(value: Any) -> str | None:
    """Return unix milliseconds (as Redis gives them) as ISO-8601 UTC text, or None."""
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    when = _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")
