"""`coordinator list`, `status` and `processes`: read what the fleet holds and reports."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import click

from coordinator._context import Settings
from coordinator._errors import OperationFailed
from coordinator.fleet.census import SUMMARY_ABOVE, census
from coordinator.fleet.specs import check_spec_id
from coordinator.fleet.state import (
    LIVE_SECONDS,
    fleet_document,
    read_fleet,
    read_spec_set,
    results_for,
    unverified_message,
)
from coordinator.view.output import Column, emit_json, print_table
from coordinator.view.processes import print_processes, process_document
from coordinator.view.results import print_full_errors, print_results
from coordinator.view.specs import print_specs
from coordinator.view.summary import print_summary
from diagnose_redis.protocol import labels_in

__all__ = ("list_specs", "processes", "processes_by", "status")


def _remaining(store: Any, spec_id: str) -> float | None:
    pttl = store.pttl(spec_id)
    return None if pttl is None else pttl / 1000.0


def list_specs(settings: Settings, *, as_json: bool, wide: bool = False) -> None:
    """List the specs with target, instrument and remaining lifespan, and those pending
    approval with who published them."""
    from diagnose_redis.publisher import read_pending

    store = settings.store()
    foreign: dict[str, list[str]] = {}
    specs, unverified = read_spec_set(store, foreign)
    version = store.version()
    entries = {
        spec_id: {**spec, "remaining_seconds": _remaining(store, spec_id)}
        for spec_id, spec in sorted(specs.items())
    }
    pending = {
        spec_id: {
            **held.spec,
            "state": "pending",
            "by": held.who,
            "key": held.key_id,
            "since": held.at,
        }
        for spec_id, held in read_pending(store).items()
    }
    if as_json:
        for entry in (*entries.values(), *pending.values()):
            entry.pop("applied", None)
        document = {"version": version, "specs": entries, "unverified": unverified}
        emit_json({**document, "pending": pending, "foreign": foreign})
    else:
        print_specs(entries, wide=wide, pending=pending, foreign=foreign)
    if unverified:
        raise OperationFailed(unverified_message(unverified))


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
                "processes": {pid: process_document(e, pid) for pid, e in sorted(live.items())},
                "late": {pid: process_document(e, pid) for pid, e in sorted(late.items())},
            }
        )
        return
    print_processes(live, late, count=count, parents=parents, max_age=max_age)


def processes_by(settings: Settings, label: str, *, max_age: float, as_json: bool) -> None:
    """Count the live processes per value of one label (``-``: processes without it)."""
    store = settings.store()
    now = time.time()
    known = store.fleet(max_age=math.inf)
    live = {pid: e for pid, e in known.items() if now - e.heartbeat <= max_age and not e.parent}
    groups = Counter(labels_in(pid, e.info).get(label, "-") for pid, e in live.items())
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        emit_json({"by": label, "count": len(live), "groups": dict(ranked)})
        return
    print_table([Column(label), Column("processes")], ranked, empty="No processes online.")
    if ranked:
        word = "process" if len(live) == 1 else "processes"
        click.echo(f"{len(live)} {word} online, {len(groups)} values of {label}.")
