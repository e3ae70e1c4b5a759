"""How `coordinator stats` shows statistics: numbers, the histogram row, side-by-side
cohorts."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.view.stats import (
    BLOCKS,
    FLEET,
    DistinctRow,
    histogram,
    number_text,
    render_stats,
)
from diagnose.sketch import Sketch


def sketch_of(values: list[float]) -> Sketch:
    sketch = Sketch()
    sketch.add_all(values)
    return sketch


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (12, "12"),
        (0.0, "0"),
        (0.00123456, "0.001235"),
        (3.14159, "3.142"),
        (123456.7, "123457"),
        (2.5e12, "2.5e+12"),
        (-42.0, "-42"),
    ],
)
def test_numbers_read_short(value: Any, text: str) -> None:
    """Ints in full, floats to 4 significant digits, large ones rounded in full."""
    assert number_text(value) == text


def test_the_histogram_rises_where_the_values_are() -> None:
    """Most values low: the tallest block on the left; the row is HISTOGRAM_WIDTH wide."""
    row = histogram(sketch_of([1.0] * 90 + [1000.0] * 10))
    assert len(row) == 16
    assert row[0] == BLOCKS[-1] and row[-1] in BLOCKS[:3] and row[5] == " "


def test_rows_of_one_group_share_the_histogram_scale() -> None:
    """Two cohorts, one twice as slow: on the shared axis the slow one's block sits further
    right than the fast one's."""
    fast, slow = sketch_of([0.1] * 50), sketch_of([0.2] * 50)
    table = render_stats(
        {"all": sketch_of([0.1] * 50 + [0.2] * 50)},
        {"1": {"all": fast}, "2": {"all": slow}},
        "version",
        width=None,
        histograms=True,
    )
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["GROUP", "VERSION", "COUNT"] and "DISTRIBUTION" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == [FLEET, "1", "2"]
    at = lines[0].index("DISTRIBUTION")
    whole, first, second = (line[at:] for line in lines[1:])
    assert whole.startswith(BLOCKS[-1]) and whole.rstrip().endswith(BLOCKS[-1])
    assert first.index(BLOCKS[-1]) < second.index(BLOCKS[-1])


def test_distinct_rows_mark_estimates() -> None:
    """An estimated distinct count shows with ~; an exact one as it is."""
    table = render_stats(
        {"a": DistinctRow(12, True, 40, 0), "b": DistinctRow(25000, False, 90000, 0)},
        None,
        None,
        width=None,
        histograms=True,
    )
    assert table.splitlines()[0].split() == ["GROUP", "DISTINCT"]
    assert "~25000" in table and " 12" in table
