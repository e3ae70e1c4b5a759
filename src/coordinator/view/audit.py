"""The table of `coordinator audit`: one change per row, oldest first."""

from __future__ import annotations

import datetime as _dt

from coordinator.view.output import Column, format_time, print_table

__all__ = ("print_audit",)


def _time(text: str) -> str:
    try:
        return format_time(_dt.datetime.fromisoformat(text))
    except ValueError:
        return text or "-"


def print_audit(entries: list[dict[str, str]], *, wide: bool) -> None:
    """Print TIME WHO ACTION SPEC DETAIL rows (WHO and DETAIL cut to the width)."""
    rows = [(_time(e["at"]), e["who"], e["action"], e["spec"], e["detail"]) for e in entries]
    columns = [
        Column("time"),
        Column("who", cut=True),
        Column("action"),
        Column("spec"),
        Column("detail", cut=True),
    ]
    print_table(columns, rows, empty="No audit entries.", wide=wide)
