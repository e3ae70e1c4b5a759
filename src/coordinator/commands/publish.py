"""`coordinator publish` and `remove`: store and publish specs, follow the fleet applying
them, delete them."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import click
import redis

from coordinator._context import Settings
from coordinator._errors import Interrupted, OperationFailed, WaitTimedOut
from coordinator.fleet.specs import check_spec_id
from coordinator.fleet.state import (
    FleetState,
    ProcessResult,
    fleet_document,
    read_fleet,
    read_spec_set,
)
from coordinator.fleet.wait import poll_results, wait_for_spec
from coordinator.view.output import (
    emit_json,
    format_duration,
)
from coordinator.view.results import (
    NOT_SEEN,
    Results,
    failures,
    pending,
    plural,
    print_results,
)
from diagnose_redis.protocol import HEARTBEAT_SECONDS

__all__ = ("publish", "remove", "wait_and_report")


def _for_store(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "applied"}


# How often --wait reads the fleet again while no process is known, and how long it goes on
# once one came back with no other coming (the others reconnect with jittered backoff).
REGISTRATION_POLL = 0.2
REGISTRATION_SETTLE = 1.5


def publish(
    settings: Settings,
    specs: dict[str, dict[str, Any]],
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
    wide: bool = False,
    needs_approval: bool = False,
) -> None:
    """Store and publish validated specs; with wait, follow the fleet applying them.

    Specs the two-person rule covers are stored pending approval instead (see
    commands.approve). The IDs are printed as soon as the specs are stored, before any wait.
    """
    from coordinator.commands.approve import hold_back

    store = settings.store()
    held = hold_back(store, specs, forced=needs_approval, as_json=as_json)
    ready = {k: _for_store(v) for k, v in specs.items() if k not in held}
    if len(ready) == 1:
        [(spec_id, spec)] = ready.items()
        version = store.put(spec_id, spec)
    else:
        version = store.put_many(ready)
    stored = {spec_id: store.get(spec_id) or spec for spec_id, spec in ready.items()}
    ids = list(stored)
    if not as_json:
        for spec_id in specs:
            click.echo(spec_id)
        sys.stdout.flush()
    if not wait or not ids:
        if as_json:
            document = fleet_document(FleetState(version, stored, [], {}, {}), ids, {})
            emit_json({**document, "pending": held} if held else document)
        elif wait:
            click.echo("nothing published, so nothing to wait for: all are pending", err=True)
        return
    try:
        fleet = dataclasses.replace(read_fleet(store), version=version, specs=stored, unverified=[])
    except KeyboardInterrupt as exc:
        # Before the wait began: what is left is read once more (the fleet may have
        # applied it already), or, failing that, said without counts.
        raise Interrupted.by(exc, _left_before_waiting(store, stored, version, ids)) from None
    wait_and_report(store, fleet, ids, timeout, as_json=as_json, wide=wide)


def _left_before_waiting(
    store: Any, stored: dict[str, dict[str, Any]], version: int, ids: list[str]
) -> str:
    """Say what a publish interrupted before its wait leaves: counts if Redis answers."""
    try:
        fleet = dataclasses.replace(read_fleet(store), version=version, specs=stored, unverified=[])
        waited = {spec_id: fleet.chosen(spec_id, fleet.live) for spec_id in ids}
        everyone = sorted({p for spec_id in ids for p in waited[spec_id]})
        seen: dict[str, list[ProcessResult]] = {}
        _poll_once_more(store, fleet, ids, everyone, seen)
        return _left_after_interrupt(_by_process(seen, everyone), ids, waited)
    except (KeyboardInterrupt, redis.RedisError):
        verb = "is" if len(ids) == 1 else "are"
        return f"{', '.join(ids)} {verb} published; {_remove_hint(ids)}"


def wait_and_report(
    store: Any, fleet: FleetState, ids: list[str], timeout: float, *, as_json: bool, wide: bool
) -> None:
    """Wait for the live processes each spec chooses to apply it; print what they said."""
    if not any(fleet.chosen(spec_id, fleet.live) for spec_id in ids):
        fleet = _await_registration(store, fleet, ids, min(timeout, HEARTBEAT_SECONDS))
    live, late = fleet.live, fleet.late

    def alive() -> set[str]:
        # Pre-fork parents serve nothing, and a process whose connection is gone (killed)
        # is offline at once: nobody waits for either.
        return set(store.processes(parents=False))

    # A late heartbeat has an age; a process known only by its status hash has none: its
    # connection closed (it was killed) or its heartbeat is gone.
    aged = {p: seconds for p in late if (seconds := fleet.late_for(p)) is not None}
    gone = [p for p in late if p not in aged]
    if aged:
        click.echo(
            f"warning: {plural(len(aged), 'process is', 'processes are')} late (no heartbeat "
            f"for over {fleet.live_seconds:g}s) and not waited for: "
            + ", ".join(f"{p} (last heartbeat {format_duration(s)} ago)" for p, s in aged.items()),
            err=True,
        )
    if gone:
        click.echo(
            f"warning: {plural(len(gone), 'process is', 'processes are')} offline (connection "
            f"closed, or no heartbeat) and not waited for: {', '.join(gone)}",
            err=True,
        )
    # Each spec is waited for on the live processes its select chooses, and only those.
    waited = {spec_id: fleet.chosen(spec_id, live) for spec_id in ids}
    if not any(waited.values()):
        if as_json:
            emit_json(fleet_document(fleet, ids, {}))
        if live:
            raise WaitTimedOut("published, but no live process matches its select")
        raise WaitTimedOut("published, but no processes are online to wait for")
    everyone = sorted({p for spec_id in ids for p in fleet.chosen(spec_id, live + late)})
    seen: dict[str, list[ProcessResult]] = {}
    complete = True
    try:
        deadline = time.monotonic() + timeout
        for spec_id in ids:
            remaining = max(0.0, deadline - time.monotonic())
            lm = fleet.specs[spec_id]["lastmodified"]
            _, in_time = wait_for_spec(
                store, spec_id, lm, waited[spec_id], remaining, seen=seen, alive=alive
            )
            complete = complete and in_time
        for spec_id in ids:
            seen[spec_id] = seen[spec_id] + poll_results(
                store, spec_id, fleet.chosen(spec_id, late), fleet.specs[spec_id]["lastmodified"]
            )
    except KeyboardInterrupt as exc:
        _poll_once_more(store, fleet, ids, everyone, seen)
        results = _by_process(seen, everyone)
        if as_json:
            emit_json(fleet_document(fleet, ids, results))
        raise Interrupted.by(exc, _left_after_interrupt(results, ids, waited))
    results = _by_process(seen, everyone)
    if as_json:
        emit_json(fleet_document(fleet, ids, results))
    else:
        print_results(results, fleet.is_live, wide=wide, err=True)
    if not complete:
        raise WaitTimedOut(f"timed out after {timeout:g}s: {pending(results, ids, waited)}")
    failed = failures(results, ids, waited)
    if failed:
        raise OperationFailed(failed)


def _await_registration(
    store: Any, fleet: FleetState, ids: list[str], seconds: float
) -> FleetState:
    """With no live process to wait for, read the fleet again for up to seconds (one
    heartbeat period): right after a Redis restart the processes register again within it,
    one by one, so the reading goes on until none has come for REGISTRATION_SETTLE."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    found, known = fleet, set[str]()
    settled = deadline
    while time.monotonic() < min(deadline, settled):
        pause.wait(REGISTRATION_POLL)
        again = dataclasses.replace(
            read_fleet(store), version=fleet.version, specs=fleet.specs, unverified=fleet.unverified
        )
        chosen = {p for spec_id in ids for p in again.chosen(spec_id, again.live)}
        if chosen - known:
            found, known = again, known | chosen
            settled = time.monotonic() + REGISTRATION_SETTLE
    return found


def _poll_once_more(
    store: Any,
    fleet: FleetState,
    ids: list[str],
    processes: list[str],
    seen: dict[str, list[ProcessResult]],
) -> None:
    """After an interrupt, read every spec's results once more, so the state left is told right.

    A second Ctrl-C, or Redis failing, keeps what was seen before.
    """
    try:
        for spec_id in ids:
            lm = fleet.specs[spec_id]["lastmodified"]
            seen[spec_id] = poll_results(store, spec_id, processes, lm)
    except (KeyboardInterrupt, redis.RedisError):
        pass


def _by_process(
    seen: Mapping[str, list[ProcessResult]], processes: list[str]
) -> dict[str, dict[str, ProcessResult]]:
    results: dict[str, dict[str, ProcessResult]] = {p: {} for p in processes}
    for spec_id, spec_results in seen.items():
        for r in spec_results:
            results.setdefault(r.process, {})[spec_id] = r
    return results


def _left_after_interrupt(results: Results, ids: list[str], waited: Mapping[str, list[str]]) -> str:
    counts = []
    for n, spec_id in enumerate(ids):
        chosen = waited[spec_id]
        applied = sum(
            1 for p in chosen if results.get(p, {}).get(spec_id, NOT_SEEN).state == "applied"
        )
        lead = f"{spec_id} is published and live on" if n == 0 else f"{spec_id} on"
        counts.append(f"{lead} {applied} of {plural(len(chosen), 'process', 'processes')}")
    return f"{', '.join(counts)}; {_remove_hint(ids)}"


def _remove_hint(ids: list[str]) -> str:
    """Say how to take published specs back."""
    them = "it" if len(ids) == 1 else "them"
    return f"remove {them} with coordinator remove {' '.join(ids)}"


def remove(settings: Settings, spec_ids: list[str], *, as_json: bool, force: bool = False) -> None:
    """Delete specs (published, or pending approval) and publish their removal; refuse specs
    of another secret without force."""
    from diagnose_redis.publisher import discard

    for spec_id in spec_ids:
        check_spec_id(spec_id)
    store = settings.store()
    if not force:
        _, unverified = read_spec_set(store)
        foreign = [spec_id for spec_id in spec_ids if spec_id in unverified]
        if foreign:
            raise OperationFailed(
                f"{', '.join(foreign)}: not signed with this secret, so nothing was removed; "
                "check --secret or DIAGNOSE_SECRET, or remove anyway with --force"
            )
    dropped = discard(store, spec_ids)
    removed = list(store.remove(*spec_ids))
    removed += [spec_id for spec_id in dropped if spec_id not in removed]
    missing = [spec_id for spec_id in spec_ids if spec_id not in removed]
    if as_json:
        emit_json({"removed": removed, "missing": missing})
    else:
        for spec_id in removed:
            click.echo(spec_id)
        for spec_id in missing:
            click.echo(f"{spec_id}: no such spec", err=True)
