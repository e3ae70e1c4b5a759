"""`coordinator exceptions ID [FINGERPRINT]`: what an exception probe counted and captured
across the fleet."""

from __future__ import annotations

from typing import Any

from coordinator._context import Settings
from coordinator._errors import OperationFailed
from coordinator.fleet.specs import check_spec_id
from coordinator.fleet.state import unverified_message
from coordinator.view.exceptions import (
    capture_documents,
    print_captures,
    print_exceptions,
)
from coordinator.view.output import emit_json
from diagnose.spec import DEFAULT_FIRST
from diagnose_redis import WireError
from diagnose_redis.publisher import find_fingerprint, read_captures, read_exceptions

__all__ = ("exceptions",)


def _exception_spec(store: Any, spec_id: str) -> dict[str, Any]:
    """Return the stored spec, or raise OperationFailed: absent, unverified, not exception."""
    try:
        spec = store.get(spec_id)
    except WireError:
        raise OperationFailed(unverified_message([spec_id]))
    if spec is None:
        raise OperationFailed(f"no such spec: {spec_id}")
    itype = spec.get("instrument", {}).get("type")
    if itype != "exception":
        raise OperationFailed(
            f"spec {spec_id} is a {itype} probe, not an exception probe "
            f"(publish one with --type exception)"
        )
    return dict(spec)


def exceptions(
    settings: Settings,
    spec_id: str,
    fingerprint: str | None = None,
    *,
    as_json: bool = False,
    wide: bool = False,
) -> None:
    """Print one row per fingerprint of an exception spec, most frequent first; or, given
    a fingerprint (or the only one it begins), its captures with their frames."""
    check_spec_id(spec_id)
    store = settings.store()
    spec = _exception_spec(store, spec_id)
    summaries = read_exceptions(store.client, store.keys, spec_id)
    if fingerprint is None:
        if as_json:
            emit_json([s.as_dict() for s in summaries])
        else:
            print_exceptions(spec_id, summaries, wide=wide)
        return
    summary = find_fingerprint(summaries, fingerprint)
    if summary is None:
        raise OperationFailed(f"no fingerprint {fingerprint} in spec {spec_id}")
    detailed, captures = read_captures(store.client, store.keys, spec_id, summary)
    if as_json:
        emit_json(
            {
                **detailed.as_dict(),
                "by_process": detailed.by_process,
                "captures": capture_documents(captures),
            }
        )
        return
    first = spec.get("instrument", {}).get("custom", {}).get("first") or DEFAULT_FIRST
    print_captures(detailed, captures, first=first, wide=wide)
