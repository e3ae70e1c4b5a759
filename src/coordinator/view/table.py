"""Lay out kubectl-style tables: one row per line, IDs whole, long cells cut with an ellipsis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

__all__ = ("ELLIPSIS", "Column", "fit_widths", "render_table", "render_table_by")

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
    #: a shorter header, used only when the table does not fit otherwise
    short: str | None = None


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
    headers, widths = _layout(columns, cells, width)
    lines = []
    for row in [headers, *cells]:
        parts = [_fit(text, w) for text, w in zip(row, widths, strict=True)]
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)


def _layout(
    columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int | None
) -> tuple[list[str], list[int]]:
    """Return the headers and column widths: the long headers if the rows fit with them,
    else the short ones."""
    chosen: list[str] = []
    widths: list[int] = []
    for short in (False, True):
        chosen = [(c.short if short and c.short else c.header).upper() for c in columns]
        natural = [
            max([_width(chosen[i]), *(_width(row[i]) for row in cells)])
            for i in range(len(columns))
        ]
        shown = [c if not short or not c.short else Column(c.short, c.cut) for c in columns]
        widths = fit_widths(shown, natural, width)
        if width is None or _total(widths) <= width:
            break
    return chosen, widths


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def render_table_by(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    width: int | None,
    group: int,
) -> str:
    """Render as render_table() does if the rows fit in width; else without the column
    group (an ID people copy, never cut), each run of rows under a line giving its value
    (``VALUE:``), in the order of that column."""
    if width is None:
        return render_table(columns, rows, width)
    table = render_table(columns, rows, width)
    if all(_width(line) <= width for line in table.splitlines()):
        return table
    rest = [c for i, c in enumerate(columns) if i != group]
    ordered = sorted(rows, key=lambda row: _one_line(row[group]))
    cells = [[_one_line(cell) for i, cell in enumerate(row) if i != group] for row in ordered]
    headers, widths = _layout(rest, cells, width)
    lines = [GAP.join(_fit(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    current: str | None = None
    for row, row_cells in zip(ordered, cells, strict=True):
        value = _one_line(row[group])
        if value != current:
            lines.append(f"{value}:")
            current = value
        lines.append(GAP.join(_fit(t, w) for t, w in zip(row_cells, widths, strict=True)).rstrip())
    return "\n".join(lines)
