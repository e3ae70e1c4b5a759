"""Lay out kubectl-style tables: one row per line, IDs whole, long cells cut with an ellipsis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

__all__ = ("ELLIPSIS", "Column", "fit_widths", "render_table")

ELLIPSIS = "…"
GAP = "  "
MIN_CUT_WIDTH = 8


@dataclass(frozen=True)
class Column:
    """A table column: its header, and whether its cells may be cut to fit the width.

    Columns people copy from (IDs, process names) and short fixed-size ones (states, times)
    are never cut; the others give up width, the widest first, down to MIN_CUT_WIDTH.
    """

    header: str
    cut: bool = False


def _one_line(cell: object) -> str:
    if cell is None or cell == "":
        return "-"
    return " ".join(str(cell).split()) or "-"


def fit_widths(columns: Sequence[Column], natural: Sequence[int], width: int | None) -> list[int]:
    """Return a width per column so the rows fit in width cells, if cutting can make them."""
    widths = list(natural)
    if width is None:
        return widths
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    floors = [
        min(n, max(cell_len(c.header), MIN_CUT_WIDTH)) if c.cut else n
        for c, n in zip(columns, natural, strict=True)
    ]
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(widths[i] for i in shrinkable)
        tied = [i for i in shrinkable if widths[i] == widest]
        others = [widths[i] for i in shrinkable if widths[i] < widest]
        # Bring the widest columns down together, to the next width or the floor.
        target = max([*others, *(floors[i] for i in tied)])
        room = (widest - target) * len(tied)
        if room > excess:
            target = widest - -(-excess // len(tied))
        for i in tied:
            cut = widths[i] - max(target, floors[i])
            widths[i] -= cut
            excess -= cut
    return widths


def _width(text: str) -> int:
    # ASCII (nearly every cell) is one cell per character: no need for rich's tables.
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int) -> str:
    """Cut text to width cells if needed, and pad it to exactly width."""
    if text.isascii() and len(text) <= width:
        return text.ljust(width)
    return set_cell_size(_cut(text, width), width)


def _cut(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    kept = set_cell_size(text, width - 1)
    # End at a word boundary when one is near, so the cut reads "has no attribute…".
    space = kept.rfind(" ")
    if space >= (width - 1) * 2 // 3 and not text[len(kept) : len(kept) + 1].isspace():
        kept = kept[:space].rstrip()
    return kept + ELLIPSIS


def render_table(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], width: int | None
) -> str:
    """Render rows under their headers, cells left-aligned, two spaces apart, no trailing space.

    With width None every cell is shown in full; otherwise cuttable cells are shortened with
    an ellipsis until each line fits in width cells (or nothing cuttable is left).
    """
    cells = [[_one_line(cell) for cell in row] for row in rows]
    headers = [column.header.upper() for column in columns]
    natural = [
        max([_width(headers[i]), *(_width(row[i]) for row in cells)]) for i in range(len(columns))
    ]
    widths = fit_widths(columns, natural, width)
    lines = []
    for row in [headers, *cells]:
        parts = [_fit(text, w) for text, w in zip(row, widths, strict=True)]
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)
