"""Line probes: an instrument that fires each time one line of the target is about to run."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import ProbeManager, SpecError
from probe_targets import shop
from support.probes import ProbeSet

TARGET = "probe_targets.shop.tally"


def line_of(func: Any, marker: str) -> int:
    """Return the line number of the line of func's source that holds marker."""
    source, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(source) if marker in text)


LOOP_LINE = line_of(shop.tally, "# tally line")


@pytest.fixture
def probeset() -> Iterator[ProbeSet]:
    with ProbeSet() as ps:
        yield ps


def line_spec(line: int, value: str = "(item, total)") -> dict[str, Any]:
    return {
        "target": TARGET,
        "instrument": {"type": "test", "name": "l", "value": value, "event": "line", "line": line},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
        "applied": {},
    }


def test_a_line_in_a_loop_fires_once_per_iteration_with_its_locals(probeset: ProbeSet) -> None:
    """Each pass over the line fires, with the locals as they are before the line runs."""
    original = shop.tally.__code__
    inst = probeset.attach(TARGET, "(item, total)", event="line", line=LOOP_LINE)
    assert shop.tally([1, 2, 3]) == 6
    assert inst.results == [(1, 0), (2, 1), (3, 3)]
    probeset.close()
    assert shop.tally.__code__ is original


def test_line_instruments_see_the_frame(probeset: ProbeSet) -> None:
    """frame is the target's own frame at that line."""
    inst = probeset.attach(TARGET, "(frame.f_code.co_name, frame.f_lineno)", "line", line=LOOP_LINE)
    shop.tally([5])
    assert inst.results == [("tally", LOOP_LINE)]


def test_line_end_and_return_instruments_combine(probeset: ProbeSet) -> None:
    """Line, end and return instruments on one function all fire, each at its moment."""
    first = probeset.attach(TARGET, "item", "line", line=LOOP_LINE, name="first")
    end = probeset.attach(TARGET, "total", "end", name="end")
    ret = probeset.attach(TARGET, "result", name="ret")
    loop_start = probeset.attach(TARGET, "total", "line", line=LOOP_LINE - 1, name="for")
    assert shop.tally([4, 5]) == 9
    assert first.results == [4, 5]
    assert end.results == [9] and ret.results == [9]
    assert loop_start.results == [0, 4, 9]  # the for line runs once more, to end the loop


@pytest.mark.parametrize(
    "line, why",
    [
        (LOOP_LINE + 10, "not a line with code"),
        (line_of(shop.price, "subtotal - discount"), "not a line with code"),
        (shop.tally.__code__.co_firstlineno, "not a line with code"),
    ],
)
def test_a_line_outside_the_function_or_without_code_is_an_apply_error(
    manager: ProbeManager, line: int, why: str
) -> None:
    """The spec's status says why; the target is untouched."""
    original = shop.tally.__code__
    manager.specs["l"] = line_spec(line)
    manager.apply()
    err = manager.specs["l"]["applied"][manager.process_id]["err"]
    assert err is not None and why in err and "its lines with code" in err
    assert shop.tally.__code__ is original


def test_a_line_spec_through_the_manager(manager: ProbeManager) -> None:
    """A line spec applies, fires, and detaches: the original code object comes back."""
    original = shop.tally.__code__
    manager.specs["l"] = line_spec(LOOP_LINE, "item * 10")
    manager.apply()
    assert manager.specs["l"]["applied"][manager.process_id]["err"] is None
    shop.tally([1, 2])
    [inst] = diagnose.probes.active_probes[TARGET].instruments.values()
    assert inst.results == [10, 20]
    manager.specs.clear()
    manager.apply()
    assert shop.tally.__code__ is original


@pytest.mark.parametrize(
    "instrument, message",
    [
        ({"event": "line"}, "needs instrument.line"),
        ({"event": "line", "line": 0}, "needs instrument.line"),
        ({"event": "line", "line": "12"}, "needs instrument.line"),
        ({"event": "return", "line": 12}, "only for event 'line'"),
    ],
)
def test_line_fields_are_validated(instrument: dict[str, Any], message: str) -> None:
    """A line instrument's line and event fields are validated, naming what is wrong."""
    spec = line_spec(1)
    spec["instrument"] = {"type": "test", "name": "l", "value": "1", **instrument}
    with pytest.raises(SpecError, match=message):
        diagnose.validate_spec(spec)


def test_lines_in_a_while_loop_and_a_generator(probeset: ProbeSet) -> None:
    """A while loop's body and a line inside try in a generator fire once per pass."""
    down = probeset.attach(
        "probe_targets.shop.wind_down", "n", "line", line=line_of(shop.wind_down, "# wind-down")
    )
    assert shop.wind_down(3) == 0
    assert down.results == [3, 2, 1]
    ev = probeset.attach(
        "probe_targets.shop.evens", "item", "line", line=line_of(shop.evens, "# evens line")
    )
    assert list(shop.evens([1, 2, 3, 4])) == [2, 4]
    assert ev.results == [2, 4]
