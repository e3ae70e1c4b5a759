"""What each data command does against the store, and how it prints its answer."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import click
import redis

from diagnose_redis._labels import labels_in
from diagnose_redis._wire import HEARTBEAT_SECONDS

from ._context import Settings
from ._errors import Interrupted, OperationFailed, WaitTimedOut
from ._fleet import (
    LIVE_SECONDS,
    FleetState,
    ProcessResult,
    fleet_document,
    read_fleet,
    read_spec_set,
    results_for,
    unverified_message,
)
from ._output import Column, ago, emit_json, format_duration, format_time, print_table
from ._results import (
    NOT_SEEN,
    Results,
    failures,
    join_names,
    pending,
    plural,
    print_full_errors,
    print_results,
)
from ._specs import check_spec_id
from ._summary import SUMMARY_ABOVE, census, print_summary
from ._wait import poll_results, wait_for_spec

__all__ = (
    "list_specs",
    "print_results",
    "processes",
    "publish",
    "remove",
    "status",
    "wait_and_report",
)


def _for_store(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "applied"}


# How often --wait reads the fleet again while no process is known.
REGISTRATION_POLL = 0.2


def publish(
    settings: Settings,
    specs: dict[str, dict[str, Any]],
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
    wide: bool = False,
) -> None:
    """Store and publish validated specs; with wait, follow the fleet applying them.

    The IDs are printed as soon as the specs are published, before any waiting.
    """
    store = settings.store()
    if len(specs) == 1:
        [(spec_id, spec)] = specs.items()
        version = store.put(spec_id, _for_store(spec))
    else:
        version = store.put_many({k: _for_store(v) for k, v in specs.items()})
    stored = {spec_id: store.get(spec_id) or spec for spec_id, spec in specs.items()}
    ids = list(stored)
    if not as_json:
        for spec_id in ids:
            click.echo(spec_id)
        sys.stdout.flush()
    if not wait:
        if as_json:
            emit_json(fleet_document(FleetState(version, stored, [], {}, {}), ids, {}))
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
    heartbeat period): right after a Redis restart the processes register again within it."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        pause.wait(REGISTRATION_POLL)
        again = dataclasses.replace(
            read_fleet(store), version=fleet.version, specs=fleet.specs, unverified=fleet.unverified
        )
        if any(again.chosen(spec_id, again.live) for spec_id in ids):
            return again
    return fleet


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
    """Delete specs and publish their removal; refuse specs of another secret without force."""
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
    removed = list(store.remove(*spec_ids))
    missing = [spec_id for spec_id in spec_ids if spec_id not in removed]
    if as_json:
        emit_json({"removed": removed, "missing": missing})
    else:
        for spec_id in removed:
            click.echo(spec_id)
        for spec_id in missing:
            click.echo(f"{spec_id}: no such spec", err=True)


def _remaining(store: Any, spec_id: str) -> float | None:
    pttl = store.pttl(spec_id)
    return None if pttl is None else pttl / 1000.0


def list_specs(settings: Settings, *, as_json: bool, wide: bool = False) -> None:
    """List the specs with target, instrument and remaining lifespan."""
    store = settings.store()
    specs, unverified = read_spec_set(store)
    version = store.version()
    entries = {
        spec_id: {**spec, "remaining_seconds": _remaining(store, spec_id)}
        for spec_id, spec in sorted(specs.items())
    }
    if as_json:
        for entry in entries.values():
            entry.pop("applied", None)
        emit_json({"version": version, "specs": entries, "unverified": unverified})
    else:
        _print_specs(entries, wide=wide)
    if unverified:
        raise OperationFailed(unverified_message(unverified))


def _print_specs(entries: dict[str, dict[str, Any]], *, wide: bool) -> None:
    rows: list[tuple[object, ...]] = []
    for spec_id, spec in entries.items():
        instrument = dict(spec.get("instrument", {}))
        remaining = format_duration(spec["remaining_seconds"])
        if instrument.get("event") == "line":
            instrument["event"] = f"line {instrument.get('line')}"
        if wide:
            rows.append(
                (
                    spec_id,
                    spec.get("target"),
                    instrument.get("type"),
                    instrument.get("name"),
                    instrument.get("event"),
                    instrument.get("value"),
                    remaining,
                    format_time(spec.get("lastmodified")),
                )
            )
        else:
            rows.append(
                (
                    spec_id,
                    spec.get("target"),
                    instrument.get("type"),
                    instrument.get("event"),
                    instrument.get("value"),
                    remaining,
                )
            )
    names = ["id", "target", "type", "name", "event", "value", "remaining", "lastmodified"]
    if not wide:
        names = [n for n in names if n not in ("name", "lastmodified")]
    cut = {"target", "name", "value"}
    print_table([Column(n, cut=n in cut) for n in names], rows, empty="No specs.", wide=wide)


def status(
    settings: Settings,
    spec_id: str | None,
    *,
    as_json: bool,
    wide: bool = False,
    summary: bool | None = None,
) -> None:
    """Show per process and spec what was applied, marking processes that are not live;
    or, with summary (by default above SUMMARY_ABOVE processes), the counts per spec."""
    if spec_id is not None:
        check_spec_id(spec_id)
    store = settings.store()
    if summary is None:
        summary = store.client.zcard(store.keys.processes) > SUMMARY_ABOVE
    if summary:
        _summary(store, spec_id, as_json=as_json, wide=wide)
        return
    fleet = read_fleet(store, spec_id)
    if spec_id is not None and spec_id in fleet.unverified:
        raise OperationFailed(unverified_message([spec_id]))
    if spec_id is None:
        ids = sorted(fleet.specs)
        results = results_for(fleet, fleet.processes)
    else:
        ids = [spec_id]
        results = {
            p: entries for p, entries in results_for(fleet, fleet.processes, ids).items() if entries
        }
        if spec_id not in fleet.specs and not results:
            raise OperationFailed(f"no such spec: {spec_id}")
    if as_json:
        emit_json(fleet_document(fleet, ids, results))
    else:
        print_results(
            results,
            fleet.is_live,
            wide=wide,
            empty="No process reports." if spec_id is None else f"No reports for {spec_id}.",
            no_probes_rows=spec_id is None,
        )
        if not wide:
            print_full_errors(results)
    if spec_id is None and fleet.unverified:
        raise OperationFailed(unverified_message(fleet.unverified))
    if spec_id is not None and spec_id not in fleet.specs:
        raise OperationFailed(f"no such spec: {spec_id} (processes still report it as removed)")


def _summary(store: Any, spec_id: str | None, *, as_json: bool, wide: bool) -> None:
    counts = census(store, spec_id)
    if spec_id is not None and spec_id in counts["unverified"]:
        raise OperationFailed(unverified_message([spec_id]))
    nobody = spec_id is not None and not counts["specs"][spec_id]["processes"]
    if nobody and spec_id not in store.specs():
        raise OperationFailed(f"no such spec: {spec_id}")
    if as_json:
        emit_json(counts)
    else:
        print_summary(counts, wide=wide)
    if spec_id is None and counts["unverified"]:
        raise OperationFailed(unverified_message(counts["unverified"]))


def processes(settings: Settings, *, max_age: float | None, as_json: bool) -> None:
    """List live processes and their last heartbeat, Celery style; name the late ones.

    Pre-fork parents (they forked the workers and serve nothing) are shown with their role
    and not counted.
    """
    store = settings.store()
    max_age = LIVE_SECONDS if max_age is None else max_age
    known = store.fleet(max_age=math.inf)
    now = time.time()
    live = {pid: e for pid, e in known.items() if now - e.heartbeat <= max_age}
    late = {pid: e for pid, e in known.items() if pid not in live}
    count = sum(1 for e in live.values() if not e.parent)
    parents = len(live) - count
    if as_json:
        emit_json(
            {
                "count": count,
                "parents": parents,
                "processes": {pid: _entry(e, pid) for pid, e in sorted(live.items())},
                "late": {pid: _entry(e, pid) for pid, e in sorted(late.items())},
            }
        )
        return
    columns = [Column("process"), Column("heartbeat"), Column("age")]
    if parents:
        columns.append(Column("role"))
    columns.append(Column("labels", cut=True))
    # Heartbeats fall within a few seconds of each other: format each second once.
    times: dict[int, tuple[str, str]] = {}

    def when(beat: float) -> tuple[str, str]:
        second = int(beat)
        if second not in times:
            times[second] = (format_time(second), ago(second))
        return times[second]

    rows = [
        (pid, *when(e.heartbeat)) + ((_role(e),) if parents else ()) + (_labels_text(pid, e),)
        for pid, e in sorted(live.items())
    ]
    if rows:
        print_table(columns, rows)
    tail = f", and {plural(parents, 'pre-fork parent', 'pre-fork parents')}" if parents else ""
    click.echo(f"{plural(count, 'process', 'processes')} online{tail}.")
    if late:
        click.echo(
            f"warning: {plural(len(late), 'process is', 'processes are')} late (no heartbeat "
            f"for over {max_age:g}s) and not counted: "
            + join_names(
                [f"{pid} (last heartbeat {ago(e.heartbeat)})" for pid, e in sorted(late.items())]
            ),
            err=True,
        )


def _labels_text(process: str, entry: Any) -> str:
    """Show a process's labels but its id (the first column), host last."""
    labels = labels_in(process, entry.info)
    labels.pop("process", None)
    host = labels.pop("host", None)
    pairs = [f"{k}={v}" for k, v in sorted(labels.items())]
    return ",".join(pairs + ([f"host={host}"] if host else []))


def _entry(entry: Any, process: str = "") -> dict[str, Any]:
    shown: dict[str, Any] = {
        "heartbeat": _utc(entry.heartbeat),
        "role": entry.role,
        "labels": labels_in(process, entry.info),
    }
    if entry.parent:
        shown["children"] = entry.children
    return shown


def _role(entry: Any) -> str:
    if not entry.parent:
        return "-"
    children = entry.children
    return "parent" if children is None else f"parent of {children}"


def _utc(unix_time: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(float(unix_time), _dt.UTC)
