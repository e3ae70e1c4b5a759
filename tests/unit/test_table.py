"""The table layout: rows fit the width, ID columns stay whole, other cells end with …."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from coordinator.view.table import ELLIPSIS, Column, fit_widths, render_table

COLUMNS = [
    Column("process"),
    Column("spec"),
    Column("state"),
    Column("error", cut=True),
    Column("target", cut=True),
]
LONG_ERROR = "TargetNotFound: shop.pricing has no attribute or submodule 'nope' " * 3
ROWS = [
    ("web-1.example:4242", "cart-total", "error", LONG_ERROR, "shop.pricing.total"),
    ("web-2", "cart-total-by-region", "applied", None, "shop.pricing.unit_price"),
]


@pytest.mark.parametrize("width", [72, 80, 100, 120])
def test_every_line_fits_and_ids_stay_whole(width: int) -> None:
    """At any width the rows fit, and the process and spec cells are never cut."""
    lines = render_table(COLUMNS, ROWS, width).splitlines()
    assert all(cell_len(line) <= width for line in lines), lines
    assert lines[0].split() == ["PROCESS", "SPEC", "STATE", "ERROR", "TARGET"]
    for line, row in zip(lines[1:], ROWS, strict=True):
        assert line.split()[:3] == list(row[:3])
    assert ELLIPSIS in lines[1]


def test_cut_cells_end_at_a_word_with_an_ellipsis() -> None:
    """A cut error text ends at a word boundary followed by …, never mid-word without it."""
    line = render_table(COLUMNS, ROWS, 120).splitlines()[1]
    error = line.split("  error  ", 1)[1].lstrip()
    shown = error.split(ELLIPSIS)[0]
    assert LONG_ERROR.startswith(shown)
    assert LONG_ERROR[len(shown)] == " "


def test_no_width_shows_every_cell_in_full() -> None:
    """With no width (--wide) every cell is whole, however long the line gets."""
    text = render_table(COLUMNS, ROWS, None)
    assert " ".join(LONG_ERROR.split()) in text
    assert ELLIPSIS not in text


def test_ids_and_headers_stay_whole_when_nothing_else_fits() -> None:
    """Too narrow for the whole columns: IDs and headers stay whole, the rest is cut."""
    lines = render_table(COLUMNS, ROWS, 40).splitlines()
    assert lines[0].split() == ["PROCESS", "SPEC", "STATE", "ERROR", "TARGET"]
    assert lines[2].split()[:3] == ["web-2", "cart-total-by-region", "applied"]
    assert lines[2].split()[-1] == "shop.pr" + ELLIPSIS


def test_a_table_that_fits_is_not_changed() -> None:
    """Short rows keep their natural widths and lose no character."""
    text = render_table([Column("id"), Column("value", cut=True)], [("a", "result")], 80)
    assert text.splitlines() == ["ID  VALUE", "a   result"]


def test_widest_cuttable_column_gives_up_width_first() -> None:
    """fit_widths takes the excess from the widest cuttable column, down to the floor."""
    columns = [Column("id"), Column("target", cut=True), Column("value", cut=True)]
    assert fit_widths(columns, [10, 30, 12], 50) == [10, 24, 12]
    assert fit_widths(columns, [10, 30, 12], None) == [10, 30, 12]
    assert fit_widths(columns, [40, 30, 12], 20) == [40, 8, 8]


def test_newlines_in_a_cell_stay_on_one_row() -> None:
    """A multi-line error text becomes one line: one row per line of output."""
    text = render_table([Column("p"), Column("error", cut=True)], [("w", "a\nb\n c")], 80)
    assert text.splitlines() == ["P  ERROR", "w  a b c"]
