"""The source of a probed function reads as before while the probe is on.

Debuggers, error pages, IDE helpers and the original library's hotspots read the source of
the function they are given: ``inspect.getsource``, ``getsourcelines`` and ``getfile`` must
answer for a probed function exactly as for the function alone, for every kind of target
and every event.
"""

from __future__ import annotations

import inspect
import linecache
from collections.abc import Callable
from typing import Any

import pytest

import diagnose
from diagnose.breakpoints import Breakpoint
from probe_targets import shop


def source_of(func: Callable[..., Any]) -> tuple[str, list[str], int, str | None, str]:
    """Return what inspect says of a function's source."""
    lines, first = inspect.getsourcelines(func)
    return inspect.getsource(func), lines, first, inspect.getsourcefile(func), inspect.getfile(func)


@pytest.mark.parametrize("event", ["call", "return", "end"])
def test_source_of_a_probed_function_reads_as_before(event: str) -> None:
    """getsource, getsourcelines, getsourcefile and getfile give the target's own source."""
    before = source_of(shop.price)
    with diagnose.sensor("probe_targets.shop.price", "1", event=event) as sensor:
        during = source_of(shop.price)
        assert shop.price(2) == 4
    assert sensor.results == [1]
    assert during == before
    assert during[0].lstrip().startswith("def price(")


def test_source_of_a_method_with_a_probe_on_args_reads_as_before() -> None:
    """A wrapper taking (*args, **kwargs) (the probe reads ``args``) is filed the same way."""
    before = source_of(shop.Cart.total)
    with diagnose.sensor("probe_targets.shop.Cart.total", "args", event="call"):
        assert source_of(shop.Cart.total) == before


def test_source_with_a_breakpoint_set_reads_as_before() -> None:
    """A breakpoint's layer is filed at the target's def line too."""
    before = source_of(shop.price)
    with Breakpoint("probe_targets.shop.price", condition=lambda *a, **k: True) as bp:
        assert source_of(shop.price) == before
        assert shop.price(3) == 6
    assert bp.calls == [True]


def test_a_frame_of_the_probe_shows_the_def_line() -> None:
    """A frame of the wrapper is at the target's def line, in its file (a traceback shows
    the line that defines the probed function, never unrelated code)."""
    first = shop.price.__code__.co_firstlineno
    with diagnose.sensor(
        "probe_targets.shop.price", "(frame.f_code.co_filename, frame.f_lineno)", event="call"
    ) as sensor:
        shop.price(1)
    [(filename, line)] = sensor.results
    assert (filename, line) == (shop.__file__, first)
    assert linecache.getline(filename, line).lstrip().startswith("def price(")
