"""The audit stream ``P:audit``: one entry per change a person made to the fleet.

Each entry has the string fields ``at`` (ISO-8601, UTC), ``who``, ``action``, ``spec`` and
``detail``; ``redis-cli XRANGE P:audit - +`` reads it. The stream is capped near
AUDIT_MAXLEN entries (``XADD MAXLEN ~``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from diagnose.clock import to_utc, utcnow

__all__ = ("ACTIONS", "AUDIT_FIELDS", "AUDIT_MAXLEN", "decode_audit", "encode_audit")

AUDIT_MAXLEN = 100_000
AUDIT_FIELDS = ("at", "who", "action", "spec", "detail")
#: What an entry's action says happened to its spec.
ACTIONS = (
    "publish",  # published; or held pending approval (detail "pending approval, ...")
    "approve",  # a second key signed a pending spec, which was published
    "remove",  # deleted, its removal published
    "expire",  # its lifespan ran out; `coordinator serve` published its removal
    "canary",  # published to the canary processes only
    "canary-widen",  # the canary held: published to every matching process
    "canary-abort",  # the canary failed: removed
)
_MAX_DETAIL = 1000


def encode_audit(
    who: str, action: str, spec: str, detail: str = "", at: _dt.datetime | None = None
) -> dict[str, str]:
    """Return the fields of one audit entry, as XADD takes them."""
    return {
        "at": to_utc(at or utcnow()).isoformat(),
        "who": who,
        "action": action,
        "spec": spec,
        "detail": " ".join(detail.split())[:_MAX_DETAIL],
    }


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def decode_audit(entry_id: Any, fields: Mapping[Any, Any]) -> dict[str, str]:
    """Return one stream entry as ``{"id", "at", "who", "action", "spec", "detail"}``;
    a field that is missing reads as ``""``."""
    named = {_text(k): _text(v) for k, v in fields.items()}
    return {"id": _text(entry_id), **{name: named.get(name, "") for name in AUDIT_FIELDS}}
