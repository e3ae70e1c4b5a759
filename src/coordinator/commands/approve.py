"""The two-person rule at the command line: `publish` holds back the specs it covers, and
`coordinator approve ID`, run by another person with another key, publishes them.

Which specs are held: those of a type that any live process's DIAGNOSE_REQUIRE_APPROVAL
covers (each declares it in ``_process``), or the coordinator's own DIAGNOSE_REQUIRE_APPROVAL
covers, or all with ``publish --needs-approval``. The workers enforce the rule whatever the
coordinator does: a spec published past it is refused (its status says so) until approved.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from coordinator._context import Settings
from coordinator._errors import BadInput, OperationFailed
from coordinator.fleet.specs import check_spec_id
from coordinator.fleet.state import LIVE_SECONDS, FleetState, read_fleet
from coordinator.fleet.trust import key_warning, own_policy, read_trust
from coordinator.view.output import emit_json
from diagnose_redis.exceptions import ApprovalError
from diagnose_redis.protocol import instrument_type
from diagnose_redis.publisher import approve as approve_spec
from diagnose_redis.publisher import hold

__all__ = ("approve", "covered", "hold_back")


def covered(store: Any, specs: dict[str, dict[str, Any]], *, forced: bool = False) -> list[str]:
    """Return the ids of the specs the two-person rule covers (all of them if forced);
    warn when no live process holds the key that signs."""
    trust = read_trust(store, LIVE_SECONDS)
    warning = key_warning(trust, store.key_id)
    if warning:
        click.echo(warning, err=True)
    policy = own_policy() | trust.policy
    return [spec_id for spec_id, spec in specs.items() if forced or policy.covers(spec)]


def hold_back(
    store: Any, specs: dict[str, dict[str, Any]], *, forced: bool, as_json: bool
) -> list[str]:
    """Store pending, unpublished, the specs the two-person rule covers; return their ids.

    Also warn when no live process holds the key that signs."""
    chosen = covered(store, specs, forced=forced)
    if not chosen:
        return []
    held = {spec_id: specs[spec_id] for spec_id in chosen}
    if store.key_id is None:
        kinds = ", ".join(sorted({instrument_type(s) or "?" for s in held.values()}))
        raise BadInput(
            f"{', '.join(held)} need approval by a second key (the two-person rule holds "
            f"{kinds} specs), and this coordinator signs with no named key: set "
            "DIAGNOSE_SECRET (or --secret) to KEYID:SECRET"
        )
    reason = "--needs-approval" if forced else "the two-person rule covers its type"
    ids = hold(store, held, note=reason)
    if not as_json:
        for spec_id in ids:
            click.echo(
                f"{spec_id}: pending approval ({reason}); not published until someone with "
                f"another key runs: coordinator approve {spec_id}",
                err=True,
            )
    return ids


def approve(
    settings: Settings, spec_id: str, *, wait: bool, timeout: float, as_json: bool, wide: bool
) -> None:
    """Add this coordinator's signature to a pending spec and publish it; with wait, follow
    the fleet applying it."""
    from coordinator.commands.publish import wait_and_report
    from coordinator.fleet.state import fleet_document

    check_spec_id(spec_id)
    store = settings.store()
    try:
        approved = approve_spec(store, spec_id)
    except ApprovalError as exc:
        raise OperationFailed(str(exc)) from None
    by = f"{approved.publisher} with key " if approved.publisher else "key "
    if not as_json:
        click.echo(spec_id)
        sys.stdout.flush()
        click.echo(
            f"{spec_id}: approved with key {store.key_id} and published (it was signed by "
            f"{by}{', '.join(approved.publisher_keys)}); its lifespan runs from now",
            err=True,
        )
    stored = {spec_id: approved.spec}
    if not wait:
        if as_json:
            emit_json(
                fleet_document(FleetState(approved.version, stored, [], {}, {}), [spec_id], {})
            )
        return
    fleet = dataclasses.replace(
        read_fleet(store), version=approved.version, specs=stored, unverified=[]
    )
    wait_and_report(store, fleet, [spec_id], timeout, as_json=as_json, wide=wide)
