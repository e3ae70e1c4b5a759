"""Print what the commands found: kubectl-style tables for people, JSON for scripts."""

from __future__ import annotations

import datetime as _dt
import io
import json
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from diagnose._time import to_utc, utcnow

__all__ = (
    "ago",
    "emit_json",
    "err_console",
    "format_duration",
    "format_time",
    "print_table",
    "to_jsonable",
)

err_console = Console(stderr=True)


def _render(renderable: object) -> str:
    # Rendered to text and echoed through click, so that click's CliRunner (which swaps
    # sys.stdout) sees it; lines are cut at the terminal's width only on a terminal.
    width = shutil.get_terminal_size((200, 25)).columns if sys.stdout.isatty() else 200
    console = Console(file=io.StringIO(), width=width, highlight=False, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in capture.get().splitlines())


def to_jsonable(value: Any) -> Any:
    """Return a copy of value that json.dumps accepts: datetimes become ISO-8601 text."""
    if isinstance(value, _dt.datetime):
        return to_utc(value).isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def emit_json(value: Any) -> None:
    """Print value as one JSON document on stdout."""
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str | None = None
) -> None:
    """Print rows under upper-case headers, without boxes, like kubectl get."""
    rows = list(rows)
    if not rows and empty is not None:
        click.echo(empty)
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.upper(), overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    click.echo(_render(table))


def format_time(value: _dt.datetime | float | None) -> str:
    """Format a datetime or unix time as ISO-8601 UTC to the second."""
    if value is None:
        return "-"
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime.fromtimestamp(float(value), _dt.UTC)
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: float | None) -> str:
    """Format a duration the kubectl way: 45s, 3m12s, 2h5m, or 'never' for None."""
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def ago(value: _dt.datetime | float | None) -> str:
    """Say how long ago a datetime or unix time was, e.g. '3s ago'."""
    if value is None:
        return "-"
    if isinstance(value, _dt.datetime):
        seconds = (utcnow() - to_utc(value)).total_seconds()
    else:
        seconds = utcnow().timestamp() - float(value)
    return f"{format_duration(seconds)} ago"
