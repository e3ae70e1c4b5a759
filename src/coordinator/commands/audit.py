"""`coordinator audit`: who published, removed, approved and rolled out what, from the
audit stream ``P:audit`` (which every change writes in its own transaction)."""

from __future__ import annotations

from coordinator._context import Settings
from coordinator.fleet.specs import check_spec_id
from coordinator.view.audit import print_audit
from coordinator.view.output import emit_json
from diagnose_redis.publisher import read_audit

__all__ = ("DEFAULT_ENTRIES", "audit")

DEFAULT_ENTRIES = 20


def audit(
    settings: Settings,
    *,
    count: int = DEFAULT_ENTRIES,
    spec_id: str | None = None,
    as_json: bool = False,
    wide: bool = False,
) -> None:
    """Print the last count audit entries (of one spec's, with spec_id), oldest first;
    --json: a list of objects with id, at, who, action, spec and detail."""
    if spec_id is not None:
        check_spec_id(spec_id)
    store = settings.store()
    entries = read_audit(store.client, store.keys, count, spec_id) if count else []
    if as_json:
        emit_json(entries)
    else:
        print_audit(entries, wide=wide)
