"""What `coordinator exceptions` prints: a table of fingerprints, or one fingerprint with its
captures laid out as a traceback with the locals of each frame."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.cells import cell_len, set_cell_size

from coordinator.view.output import Column, ago, print_table, table_width
from coordinator.view.table import ELLIPSIS

__all__ = (
    "capture_documents",
    "frame_line",
    "innermost_frame",
    "print_captures",
    "print_exceptions",
)


def _when(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def print_exceptions(spec_id: str, summaries: Sequence[Any], *, wide: bool = False) -> None:
    """Print one row per fingerprint: FINGERPRINT TYPE COUNT PROCESSES LAST-SEEN MESSAGE."""
    rows = [
        (s.fingerprint, s.type, s.count, s.processes, ago(_when(s.last_at)), s.message)
        for s in summaries
    ]
    columns = [
        Column("fingerprint"),
        Column("type"),
        Column("count"),
        Column("processes"),
        Column("last-seen"),
        Column("message", cut=True),
    ]
    print_table(columns, rows, empty=f"No exceptions counted for {spec_id} yet.", wide=wide)


def capture_documents(captures: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the captures as --json prints them: ``process``, ``at`` and ``frames`` first."""
    return [
        {
            "process": c.get("process"),
            "at": c.get("at"),
            "frames": c.get("frames", []),
            **{k: v for k, v in c.items() if k not in ("process", "at", "frames")},
        }
        for c in captures
    ]


def innermost_frame(capture: dict[str, Any]) -> dict[str, Any] | None:
    """Return a capture's innermost frame (its last), or None."""
    frames = capture.get("frames")
    if isinstance(frames, list) and frames and isinstance(frames[-1], dict):
        return frames[-1]
    return None


def frame_line(frame: dict[str, Any]) -> str:
    """Return where a frame was, as a traceback says it: File "F", line N, in FUNCTION."""
    return f'File "{frame.get("file", "?")}", line {frame.get("line", "?")}, in ' + str(
        frame.get("function", "?")
    )


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _fit(text: str, width: int | None) -> str:
    if width is None or cell_len(text) <= width:
        return text
    return set_cell_size(text, max(width - 1, 8)) + ELLIPSIS


def print_captures(
    summary: Any, captures: Sequence[dict[str, Any]], *, first: int | None, wide: bool = False
) -> None:
    """Print one fingerprint, then each capture as a traceback with each frame's locals."""
    width = table_width(wide)
    per_process = ", ".join(f"{p}: {n}" for p, n in summary.by_process.items())
    where = f"{summary.processes} process" + ("" if summary.processes == 1 else "es")
    lines = [
        f"Fingerprint  {summary.fingerprint}",
        f"Type         {summary.type}",
        f"Message      {summary.message}",
        f"Count        {summary.count} in {where}" + (f" ({per_process})" if per_process else ""),
        f"First seen   {summary.first_at or '-'} ({ago(_when(summary.first_at))})",
        f"Last seen    {summary.last_at or '-'} ({ago(_when(summary.last_at))})",
        f"Captures     {len(captures)}" + (f" of at most {first}" if first else ""),
    ]
    for line in lines:
        click.echo(_fit(line, width))
    for n, capture in enumerate(captures, 1):
        click.echo()
        click.echo(
            f"Capture {n}: process {capture.get('process', '?')} at {capture.get('at', '?')}"
        )
        if capture.get("@error"):
            click.echo(f"  ({capture['@error']})")
        for frame in capture.get("frames") or ():
            if not isinstance(frame, dict):
                continue
            click.echo(_fit("  " + frame_line(frame), width))
            names = frame.get("locals")
            for name, value in (names if isinstance(names, dict) else {}).items():
                click.echo(_fit(f"      {name} = {_value(value)}", width))
        click.echo(
            _fit(f"  {capture.get('type', summary.type)}: {capture.get('message', '')}", width)
        )
