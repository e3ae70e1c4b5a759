"""The table of `coordinator list`: one spec per row, those pending approval last, each
followed by a line saying who published it and how to approve it."""

from __future__ import annotations

from typing import Any

import click

from coordinator.view.output import Column, ago, format_duration, format_time, print_table

__all__ = ("print_specs",)


def print_specs(
    entries: dict[str, dict[str, Any]],
    *,
    wide: bool,
    pending: dict[str, dict[str, Any]] | None = None,
    foreign: dict[str, list[str]] | None = None,
) -> None:
    """Print the specs (REMAINING ``pending`` for those awaiting approval); say which are
    signed with keys this coordinator does not hold (shown as stored, unverified)."""
    pending = pending or {}
    rows: list[tuple[object, ...]] = []
    for spec_id, spec in [*entries.items(), *pending.items()]:
        instrument = dict(spec.get("instrument", {}))
        if spec.get("state") == "pending":
            remaining = "pending"
        else:
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
    for spec_id, key_ids in (foreign or {}).items():
        keys = ", ".join(repr(k) for k in key_ids)
        click.echo(
            f"{spec_id} is signed with key {keys}, which this coordinator does not hold: "
            "shown as stored (the workers check its signature)"
        )
    for spec_id, spec in pending.items():
        click.echo(
            f"{spec_id} is pending approval: published by {spec.get('by')} with key "
            f"{spec.get('key') or '?'} {ago(spec.get('since'))}; another key approves it with "
            f"coordinator approve {spec_id}"
        )
