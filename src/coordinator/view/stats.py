"""How `coordinator stats` prints the fleet's statistics of a spec: one row per group (and
per process or label value when asked), with a small histogram of the distribution beside
the quantiles in a terminal; a JSON document for scripts.

The histograms of the rows of one group share their scale, so that a canary's distribution
can be set against the rest's at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.view.table import Column, render_table
from diagnose.sketch import Sketch

__all__ = (
    "BLOCKS",
    "FLEET",
    "HISTOGRAM_WIDTH",
    "DistinctRow",
    "histogram",
    "number_text",
    "render_stats",
    "row_document",
    "scale_of",
)

BLOCKS = "▁▂▃▄▅▆▇█"
HISTOGRAM_WIDTH = 16
QUANTILES = (0.5, 0.9, 0.99)
#: The row of a whole group above its rows per process or label value.
FLEET = "(fleet)"
_BLANK = "\u2800"


@dataclass
class DistinctRow:
    """The distinct count of a group, whether it is exact, and the values counted."""

    distinct: int
    exact: bool
    count: int
    invalid: int


def number_text(value: float | int | None) -> str:
    """Return a number as a table shows it: ints in full, floats to 4 significant digits
    (in full, rounded, from 10,000 up to a billion)."""
    if value is None:
        return "-"
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if 1e4 <= magnitude < 1e9:
        return f"{value:.0f}"
    return f"{value:.4g}"


def row_document(row: Sketch | DistinctRow) -> dict[str, Any]:
    """Return one group's statistics as ``--json`` prints them."""
    if isinstance(row, DistinctRow):
        return {
            "distinct": row.distinct,
            "exact": row.exact,
            "count": row.count,
            "invalid": row.invalid,
        }
    document: dict[str, Any] = {
        "count": row.count,
        "sum": row.total,
        "min": row.low,
        "max": row.high,
        "mean": row.mean,
        "invalid": row.invalid,
    }
    for q in QUANTILES:
        document[f"p{round(q * 100)}"] = row.quantile(q)
    return document


# --- the histogram ----------------------------------------------------------------------


def _position(value: float, smallest: float) -> float:
    """Place value on a symmetric log axis: 0 at 0, ±(1 + log(|v| / smallest)) elsewhere."""
    if value == 0:
        return 0.0
    return math.copysign(1.0 + math.log(abs(value) / smallest), value)


def scale_of(sketches: Sequence[Sketch]) -> tuple[float, float, float] | None:
    """Return the axis the histograms of these sketches share: (smallest |value| not 0,
    lowest position, highest position); None when they hold no number."""
    rows = [b for sketch in sketches for b in sketch.buckets()]
    if not rows:
        return None
    magnitudes = [abs(v) for v, _ in rows if v]
    smallest = min(magnitudes) if magnitudes else 1.0
    positions = [_position(v, smallest) for v, _ in rows]
    return smallest, min(positions), max(positions)


def histogram(
    sketch: Sketch,
    scale: tuple[float, float, float] | None = None,
    width: int = HISTOGRAM_WIDTH,
) -> str:
    """Return the distribution of a sketch as a row of block characters, low values left,
    on a log axis (the scale's, shared with other rows, else the sketch's own); an empty
    bin is a space."""
    scale = scale or scale_of([sketch])
    if scale is None:
        return ""
    smallest, low, high = scale
    bins = [0] * width
    span = high - low
    for value, count in sketch.buckets():
        at = 0 if span <= 0 else int((_position(value, smallest) - low) / span * width)
        bins[min(max(at, 0), width - 1)] += count
    top = max(bins)
    if not top:
        return ""
    return "".join(
        " " if not n else BLOCKS[max(0, math.ceil(n / top * len(BLOCKS)) - 1)] for n in bins
    )


# --- the table --------------------------------------------------------------------------


def _group_order(groups: Mapping[str, Any]) -> list[str]:
    """Groups by count, largest first; ``other`` last."""

    def size(group: str) -> int:
        row = groups[group]
        return int(row.count) if hasattr(row, "count") else 0

    return sorted(groups, key=lambda g: (g == "other", -size(g), g))


def render_stats(
    fleet: Mapping[str, Sketch | DistinctRow],
    split: Mapping[str, Mapping[str, Sketch | DistinctRow]] | None,
    split_by: str | None,
    *,
    width: int | None,
    histograms: bool,
) -> str:
    """Render the table: a row per group of the fleet; with split (label value -> its
    groups), under each group's fleet row, a row per label value that has it."""
    stats = not any(isinstance(row, DistinctRow) for row in fleet.values())
    columns = [Column("group", cut=True)]
    if split is not None:
        columns.append(Column(split_by or "process"))
    if stats:
        names = ["count", "min", "p50", "p90", "p99", "max", "mean"]
        columns += [Column(name) for name in names]
        if histograms:
            columns.append(Column("distribution"))
    else:
        columns += [Column("distinct")]
    rows: list[list[object]] = []
    for group in _group_order(fleet):
        members = [(FLEET, fleet[group])]
        if split is not None:
            members += [(name, row[group]) for name, row in sorted(split.items()) if group in row]
        scale = None
        if stats and histograms:
            scale = scale_of([row for _, row in members if isinstance(row, Sketch)])
        for name, row in members:
            cells: list[object] = [group]
            if split is not None:
                cells.append(name)
            if isinstance(row, DistinctRow):
                cells.append(f"{row.distinct}" if row.exact else f"~{row.distinct}")
            else:
                cells += [
                    row.count,
                    number_text(row.low),
                    *(number_text(row.quantile(q)) for q in QUANTILES),
                    number_text(row.high),
                    number_text(row.mean),
                ]
                if histograms:
                    cells.append(histogram(row, scale).replace(" ", _BLANK) or "-")
            rows.append(cells)
    # The table folds spaces in a cell: an empty bin is held by a blank that is not one.
    return render_table(columns, rows, width).replace(_BLANK, " ")
