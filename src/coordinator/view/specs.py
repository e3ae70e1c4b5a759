"""The table of `coordinator list`: one spec per row."""

from __future__ import annotations

from typing import Any

from coordinator.view.output import Column, format_duration, format_time, print_table

__all__ = ("print_specs",)


def print_specs(entries: dict[str, dict[str, Any]], *, wide: bool) -> None:
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
