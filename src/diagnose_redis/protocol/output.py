"""Entries of the fleet's output stream ``P:output``: string fields, written by the
subscribers' outflow and read by ``coordinator tail``."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

__all__ = ("OUTPUT_FIELDS", "OUTPUT_MAXLEN", "decode_output", "encode_output", "output_maxlen")

#: The fields of an output stream entry, in the order written.
OUTPUT_FIELDS = ("process", "spec", "name", "type", "value", "tags", "at")
#: Entries the output stream keeps (about: XADD MAXLEN ~), unless DIAGNOSE_OUTPUT_MAXLEN says.
OUTPUT_MAXLEN = 10_000


def output_maxlen(text: str | None) -> int:
    """Read DIAGNOSE_OUTPUT_MAXLEN: a positive number of entries (OUTPUT_MAXLEN if unset)."""
    if text is None or not text.strip():
        return OUTPUT_MAXLEN
    try:
        maxlen = int(text)
    except ValueError:
        maxlen = 0
    if maxlen < 1:
        raise ValueError(f"DIAGNOSE_OUTPUT_MAXLEN must be a positive integer, not {text!r}")
    return maxlen


def encode_output(
    process: str,
    spec: str,
    name: str,
    itype: str,
    value: str,
    tags: Mapping[str, Any],
    at: float,
) -> dict[str, str]:
    """Return the fields of one output stream entry (``at`` in unix seconds)."""
    when = _dt.datetime.fromtimestamp(at, _dt.UTC).isoformat(timespec="milliseconds")
    return {
        "process": process,
        "spec": spec,
        "name": name,
        "type": itype,
        "value": value,
        "tags": json.dumps(dict(tags), ensure_ascii=False, separators=(",", ":"), default=str),
        "at": when.replace("+00:00", "Z"),
    }


def decode_output(entry_id: str | bytes, fields: Mapping[Any, Any]) -> dict[str, Any]:
    """Return an output stream entry as ``{"id", OUTPUT_FIELDS...}``, all text; a field
    missing from the entry (written by someone else) is ``""``."""
    text = {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): (
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        )
        for k, v in fields.items()
    }
    entry = {"id": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)}
    for name in OUTPUT_FIELDS:
        entry[name] = text.get(name, "")
    return entry
