"""The summary of `coordinator status --summary`: the count of processes in each state per
spec, and the most frequent errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from coordinator.fleet.census import STATES
from coordinator.view.output import Column, print_table

__all__ = ("print_summary",)

# Headers when a long spec ID leaves no room for the long ones at 80 columns.
SHORT_STATES = {"pending": "pend"}


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
        Column("processes", short="procs"),
        *(Column(state, short=SHORT_STATES.get(state)) for state in STATES),
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
