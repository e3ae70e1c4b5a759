"""Read a big fleet at a glance: status per spec in counts, processes grouped by a label."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import click

from diagnose_redis._labels import labels_in

from ._context import Settings
from ._fleet import FleetState, ProcessResult
from ._output import Column, emit_json, print_table

__all__ = ("SUMMARY_ABOVE", "STATES", "print_summary", "processes_by", "summarize")

# status prints the summary by default when more processes than this are concerned.
SUMMARY_ABOVE = 50
STATES = ("applied", "error", "pending", "stale")
TOP_ERRORS = 3


def summarize(
    fleet: FleetState, ids: list[str], results: Mapping[str, Mapping[str, ProcessResult]]
) -> dict[str, Any]:
    """Count, per spec, the processes in each state, and its most frequent errors."""
    specs: dict[str, Any] = {}
    for spec_id in ids:
        states: Counter[str] = Counter({state: 0 for state in STATES})
        errors: dict[str, list[str]] = {}
        late = 0
        for process, entries in results.items():
            result = entries.get(spec_id)
            if result is None:
                continue
            states[result.state] += 1
            late += not fleet.is_live(process)
            if result.err:
                errors.setdefault(result.err, []).append(process)
        ranked = sorted(errors.items(), key=lambda item: (-len(item[1]), item[0]))
        specs[spec_id] = {
            "processes": sum(states.values()),
            "late": late,
            "states": dict(states),
            "errors": [
                {"err": text, "count": len(names), "processes": sorted(names)[:5]}
                for text, names in ranked[:TOP_ERRORS]
            ],
        }
    removed = sorted(
        {sid for entries in results.values() for sid in entries if sid not in fleet.specs}
    )
    return {
        "version": fleet.version,
        "specs": specs,
        "removed": removed,
        "unverified": fleet.unverified,
    }


def print_summary(summary: Mapping[str, Any], *, wide: bool = False) -> None:
    """Print one row per spec: the count in each state and its most frequent error."""
    rows = []
    for spec_id, entry in summary["specs"].items():
        states = entry["states"]
        top = entry["errors"][0] if entry["errors"] else None
        rows.append(
            (
                spec_id,
                entry["processes"],
                *(states.get(state, 0) for state in STATES),
                f"{top['count']}× {top['err']}" if top else None,
            )
        )
    columns = [
        Column("spec"),
        Column("processes"),
        *(Column(state) for state in STATES),
        Column("top error", cut=True),
    ]
    print_table(columns, rows, empty="No specs.", wide=wide)
    errors = [(spec_id, e) for spec_id, entry in summary["specs"].items() for e in entry["errors"]]
    if errors:
        click.echo("\nMost frequent errors:")
        for spec_id, error in errors:
            more = error["count"] - len(error["processes"])
            names = ", ".join(error["processes"]) + (f" and {more} more" if more > 0 else "")
            click.echo(f"  {spec_id}: {error['count']}× on {names}: {error['err']}")
    if summary["removed"]:
        click.echo(
            f"\nStill reported by some processes, though removed: {', '.join(summary['removed'])}"
        )


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
