"""Time in one convention: aware UTC datetimes, and the one rule for when a spec expires.

Every layer (the manager, the wire format, the store, the coordinator) converts through
these helpers, so a naive datetime always means UTC and an aware one in another zone is
converted, never relabelled.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

__all__ = ("expires_at", "expiry_timestamp", "to_utc", "utcnow", "utcnow_naive")

UTC = _dt.UTC


def to_utc(value: _dt.datetime) -> _dt.datetime:
    """Return an aware UTC datetime; naive values are taken as UTC."""
    zone = value.tzinfo
    if zone is UTC:
        return value
    if zone is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> _dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return _dt.datetime.now(UTC)


def utcnow_naive() -> _dt.datetime:
    """Return the current UTC time without tzinfo (the ``now`` probes have always seen)."""
    return _dt.datetime.now(UTC).replace(tzinfo=None)


def expires_at(spec: Mapping[str, Any]) -> _dt.datetime | None:
    """Return when a spec's instrument stops firing (aware UTC), or None if never.

    The rule: ``lastmodified + lifespan`` minutes; a lifespan of None never expires.
    Raises TypeError, KeyError or OverflowError for a spec whose fields do not fit it.
    """
    lifespan = spec.get("lifespan")
    if lifespan is None:
        return None
    return to_utc(spec["lastmodified"]) + _dt.timedelta(minutes=lifespan)


def expiry_timestamp(spec: Mapping[str, Any]) -> float | None:
    """Return expires_at(spec) as unix seconds, or None when it never expires or its fields
    do not fit the rule (an unvalidated spec from the wire, say)."""
    lastmodified = spec.get("lastmodified")
    if spec.get("lifespan") is None or not isinstance(lastmodified, _dt.datetime):
        return None
    try:
        when = expires_at(spec)
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    return None if when is None else when.timestamp()
