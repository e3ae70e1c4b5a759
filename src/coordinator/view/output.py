"""Print what the commands found: kubectl-style tables for people, JSON for scripts."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from coordinator.view.table import Column, render_table, render_table_by
from diagnose.clock import to_utc, utcnow

__all__ = (
    "DEFAULT_WIDTH",
    "Column",
    "ago",
    "emit_json",
    "format_duration",
    "format_time",
    "print_table",
    "table_width",
    "to_jsonable",
)


DEFAULT_WIDTH = 80


def table_width(wide: bool = False, *, err: bool = False) -> int | None:
    """Return the width tables are cut to: None (no cut) with --wide.

    On a terminal its width; elsewhere (a pipe, a file) the COLUMNS variable if set, else 80,
    as rich does, so that what a script captures is what a person sees at 80 columns.
    """
    if wide:
        return None
    stream = sys.stderr if err else sys.stdout
    try:
        isatty = stream.isatty()
    except (AttributeError, ValueError):
        isatty = False
    if isatty:
        return shutil.get_terminal_size((DEFAULT_WIDTH, 25)).columns
    try:
        return max(20, int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        return DEFAULT_WIDTH


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
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    *,
    empty: str | None = None,
    wide: bool = False,
    err: bool = False,
    group: int | None = None,
) -> None:
    """Print rows under upper-case headers, without boxes, like kubectl get; a table too
    wide with column group (an ID) is printed grouped by it (see render_table_by)."""
    rows = list(rows)
    if not rows and empty is not None:
        click.echo(empty, err=err)
        return
    width = table_width(wide, err=err)
    if group is not None:
        click.echo(render_table_by(columns, rows, width, group), err=err)
        return
    click.echo(render_table(columns, rows, width), err=err)


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
