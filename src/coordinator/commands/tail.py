"""`coordinator tail`: read the fleet's probe output from the stream ``P:output``.

The last N entries (oldest first), filtered by spec ID and process glob, then with ``-f``
every new entry as it arrives (``XREAD BLOCK``), until Ctrl-C. One line per entry for
people (``TIME PROCESS SPEC VALUE``, cut to the terminal), one JSON object per line with
``--json``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click
import redis
from rich.cells import cell_len, set_cell_size

from coordinator._context import REDIS_DEADLINE, Settings
from coordinator._errors import BadInput
from coordinator.view.exceptions import innermost_frame
from coordinator.view.output import table_width
from coordinator.view.table import ELLIPSIS
from diagnose_redis.protocol import decode_output

__all__ = (
    "BLOCK_SECONDS",
    "DEFAULT_LINES",
    "Follower",
    "Lines",
    "OutputFilter",
    "parse_duration",
    "read_last",
    "tail",
)

DEFAULT_LINES = 20
#: How long one XREAD waits for new entries: under the command line's read deadline (the
#: socket's timeout), so that a server that stopped answering fails the command in time.
BLOCK_SECONDS = min(1.0, REDIS_DEADLINE / 2)
_SCAN_BATCH = 1000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Entry = dict[str, Any]


def parse_duration(text: str) -> float:
    """Read a duration: 90 (seconds), 30s, 5m, 1h30m, 2d, 500ms; return seconds."""
    compact = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(compact):
        match = _DURATION.match(compact, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
        pos = match.end()
    if not compact or pos != len(compact) or total <= 0:
        raise BadInput(f"--since must be a duration like 30s, 5m, 1h30m or 2d, not {text!r}")
    return total


@dataclass(frozen=True)
class OutputFilter:
    """Which entries to show: of these spec IDs (all if none), of processes matching glob."""

    spec_ids: frozenset[str] = frozenset()
    process_glob: str | None = None

    def __call__(self, entry: Entry) -> bool:
        if self.spec_ids and entry["spec"] not in self.spec_ids:
            return False
        return self.process_glob is None or fnmatch.fnmatchcase(entry["process"], self.process_glob)


def _decode(raw: Iterable[tuple[Any, Any]]) -> Iterator[Entry]:
    for entry_id, fields in raw:
        yield decode_output(entry_id, fields)


def read_last(
    client: redis.Redis,
    key: str,
    count: int | None,
    matches: Callable[[Entry], bool],
    since_ms: int | None = None,
) -> tuple[list[Entry], str]:
    """Return the last count entries that match (all since since_ms when count is None),
    oldest first, and the ID of the newest entry in the stream ("0-0" when it is empty),
    from which to follow."""
    found: list[Entry] = []
    newest = "0-0"
    upper: str = "+"
    lower = "-" if since_ms is None else str(since_ms)
    while count is None or len(found) < count:
        batch: Any = client.xrevrange(key, upper, lower, count=_SCAN_BATCH)
        if not batch:
            break
        entries = list(_decode(batch))
        if newest == "0-0":
            newest = entries[0]["id"]
        for entry in entries:
            if matches(entry):
                found.append(entry)
                if count is not None and len(found) >= count:
                    break
        if len(batch) < _SCAN_BATCH:
            break
        upper = "(" + entries[-1]["id"]
    if newest == "0-0":
        # Nothing read (-n 0, or nothing since then): follow from the newest entry all the same.
        last: Any = client.xrevrange(key, "+", "-", count=1)
        if last:
            newest = decode_output(last[0][0], last[0][1])["id"]
    found.reverse()
    return found, newest


class Follower:
    """Follow the stream from an entry ID on, handing each matching entry to a callback."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        after: str,
        matches: Callable[[Entry], bool],
        block: float = BLOCK_SECONDS,
    ) -> None:
        self.client = client
        self.key = key
        self.after = after
        self.matches = matches
        self.block_ms = max(1, int(block * 1000))

    def poll(self) -> list[Entry]:
        """Wait up to the block time for new entries; return those that match."""
        reply: Any = self.client.xread(
            {self.key: self.after}, count=_SCAN_BATCH, block=self.block_ms
        )
        found = []
        for _stream, raw in reply or ():
            for entry in _decode(raw):
                self.after = entry["id"]
                if self.matches(entry):
                    found.append(entry)
        return found

    def run(self, on_entry: Callable[[Entry], None], until: Callable[[], bool]) -> None:
        """Call on_entry for each new matching entry until until() is true."""
        while not until():
            for entry in self.poll():
                on_entry(entry)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def as_document(entry: Entry) -> dict[str, Any]:
    """Return an entry as --json prints it: tags (and a snapshot's value) as JSON data."""
    doc = dict(entry)
    doc["tags"] = _json_or_text(entry["tags"]) if entry["tags"] else {}
    if entry["type"] in ("snapshot", "exception"):
        doc["value"] = _json_or_text(entry["value"])
    return doc


def value_text(entry: Entry) -> str:
    """Return what the VALUE column shows: a log's value, other types after their name,
    tags after the value; on one line."""
    kind = entry["type"]
    if kind == "exception":
        return exception_text(entry["value"])
    value = " ".join(entry["value"].split())
    if kind and kind != "log":
        value = f"{kind}: {value}"
    tags = entry["tags"]
    if tags and tags != "{}":
        value = f"{value}  tags={' '.join(tags.split())}"
    return value


def exception_text(value: str) -> str:
    """Return what the VALUE column shows of an exception capture: its type, message and
    innermost frame (the whole capture is in --json and `coordinator exceptions`)."""
    capture = _json_or_text(value)
    if not isinstance(capture, dict):
        return "exception: " + " ".join(value.split())
    text = " ".join(f"exception: {capture.get('type', '?')}: {capture.get('message', '')}".split())
    frame = innermost_frame(capture)
    if frame is not None:
        where = f"{frame.get('function', '?')} ({frame.get('file', '?')}:{frame.get('line', '?')})"
        text += "  at " + " ".join(where.split())
    return text


@dataclass
class Lines:
    """Print entries as ``TIME PROCESS SPEC VALUE`` lines, columns aligned as they grow."""

    width: int | None
    widths: list[int] = field(default_factory=lambda: [0, 0])

    def format(self, entry: Entry) -> str:
        """Return one entry's line, cut to the width (never the time, process or spec)."""
        process, spec = entry["process"] or "-", entry["spec"] or "-"
        self.widths = [max(self.widths[0], cell_len(process)), max(self.widths[1], cell_len(spec))]
        head = "  ".join(
            [
                entry["at"] or "-",
                set_cell_size(process, self.widths[0]),
                set_cell_size(spec, self.widths[1]),
            ]
        )
        value = value_text(entry)
        if self.width is not None:
            room = self.width - cell_len(head) - 2
            if cell_len(value) > room:
                value = set_cell_size(value, max(room - 1, 7)) + ELLIPSIS
        return f"{head}  {value}".rstrip()

    def size(self, entries: Iterable[Entry]) -> None:
        """Widen the columns for these entries before printing them."""
        for entry in entries:
            self.widths[0] = max(self.widths[0], cell_len(entry["process"] or "-"))
            self.widths[1] = max(self.widths[1], cell_len(entry["spec"] or "-"))


def _printer(as_json: bool, wide: bool) -> tuple[Callable[[Entry], None], Lines | None]:
    if as_json:

        def print_json(entry: Entry) -> None:
            click.echo(json.dumps(as_document(entry), ensure_ascii=False, sort_keys=True))

        return print_json, None
    lines = Lines(table_width(wide))

    def print_line(entry: Entry) -> None:
        click.echo(lines.format(entry))

    return print_line, lines


def tail(
    settings: Settings,
    spec_ids: Iterable[str],
    *,
    process_glob: str | None = None,
    count: int | None = DEFAULT_LINES,
    since: float | None = None,
    follow: bool = False,
    as_json: bool = False,
    wide: bool = False,
) -> None:
    """Print the last entries of the output stream, then follow it with follow=True, until
    Ctrl-C (or SIGTERM, or a closed pipe), which ends it quietly."""
    client = settings.client()
    key = settings.store().keys.output
    matches = OutputFilter(frozenset(spec_ids), process_glob)
    emit, lines = _printer(as_json, wide)
    try:
        since_ms = None
        if since is not None:
            seconds, micros = client.time()
            since_ms = max(0, int((seconds + micros / 1e6 - since) * 1000))
        entries, newest = read_last(client, key, count, matches, since_ms)
        if lines is not None:
            lines.size(entries)
        for entry in entries:
            emit(entry)
        sys.stdout.flush()
        if follow:
            follower = Follower(client, key, newest, matches)

            def show(entry: Entry) -> None:
                emit(entry)
                sys.stdout.flush()

            follower.run(show, lambda: False)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM) is how a person stops following: not an error.
        return
    except BrokenPipeError:
        # `coordinator tail -f | head`: the reader has gone; so do we, quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return
