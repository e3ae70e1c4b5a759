"""Code written for the original diagnose library keeps working (its documented behaviour)."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import diagnose
from diagnose import ProbeTestInstrument, probes
from probe_targets import legacy
from support.probes import ProbeSet

LATER = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)


@pytest.fixture
def probeset() -> Iterator[ProbeSet]:
    """Probes the test attaches; all stopped and forgotten at its end."""
    with ProbeSet() as ps:
        yield ps


@pytest.mark.parametrize(
    "event, names",
    [
        ("call", ["arg", "args", "frame", "kwargs", "now", "self", "start"]),
        (
            "return",
            ["arg", "args", "elapsed", "end", "frame", "kwargs", "now", "result", "self", "start"],
        ),
    ],
)
def test_locals_lists_what_the_original_gave(
    probeset: ProbeSet, event: str, names: list[str]
) -> None:
    """locals() in an expression lists the passed arguments and the event's names only."""
    inst = probeset.attach(
        "probe_targets.legacy.Widget.render", "sorted(locals().keys())", event=event
    )
    assert legacy.Widget().render("ok") == "<ok>"
    assert inst.results == [names]


def test_call_args_include_self(probeset: ProbeSet) -> None:
    """A method's call-event args are the positional arguments passed, self included."""
    inst = probeset.attach("probe_targets.legacy.Widget.render", "args", event="call")
    widget = legacy.Widget()
    widget.render("ok")
    assert inst.results == [(widget, "ok")]


def test_elapsed_at_call_is_an_instrument_error(probeset: ProbeSet) -> None:
    """Reading elapsed at call time is a NameError handed to the instrument's handle_error."""
    inst = probeset.attach("probe_targets.legacy.Widget.render", "elapsed", event="call")
    errors: list[str] = []
    inst.handle_error = lambda probe: errors.append(str(sys.exc_info()[1]))
    assert legacy.Widget().render("ok") == "<ok>"
    assert inst.results == []
    assert errors == ["name 'elapsed' is not defined"]


def test_instruments_added_after_start_fire(probeset: ProbeSet) -> None:
    """An instrument put on an already started probe fires from the next call."""
    probe = probes.attach_to("probe_targets.legacy.plus_thirteen")
    probe.start()
    try:
        probe.instruments["later"] = inst = ProbeTestInstrument(
            name="later", value="frame.f_back.f_code.co_name", expires=LATER
        )
        assert legacy.plus_thirteen(1) == 14
        assert inst.results == ["test_instruments_added_after_start_fire"]
    finally:
        probe.stop()
        probes.active_probes.pop("probe_targets.legacy.plus_thirteen", None)


def test_end_error_expires_the_instrument_and_reaches_the_manager(
    probeset: ProbeSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing end instrument gets error_expiration and its error reaches handle_error."""
    errors: list[str] = []
    monkeypatch.setattr(
        diagnose.manager, "handle_error", lambda probe, instr: errors.append(str(sys.exc_info()[1]))
    )
    inst = probeset.attach(
        "probe_targets.legacy.plus_thirteen", "unknown", event="end", mgr=diagnose.manager
    )
    assert legacy.plus_thirteen(1000) == 1013
    assert inst.results == []
    assert inst.expires == inst.error_expiration
    assert errors == ["name 'unknown' is not defined"]


def test_hotspots_name_the_slowest_line_in_tags(probeset: ProbeSet) -> None:
    """hotspots.worst gives the time, line number and source of the costliest line."""
    first_line = legacy.count_tens.__code__.co_firstlineno
    inst = probeset.attach(
        "probe_targets.legacy.count_tens",
        "hotspots.worst.time",
        custom={"tags": '{"source": "%s:%s" % (hotspots.worst.lineno, hotspots.worst.source)}'},
    )
    assert legacy.count_tens(0, 20000) == 2000
    [(tags, value)] = inst.log
    assert isinstance(value, float)
    assert tags == {
        "source": f"{first_line + 2}:    tens = len([n for n in numbers if n % 10 == 0])\n"
    }


@pytest.mark.parametrize(
    "target, error",
    [
        ("probe_targets.legacy.Widget.nosuchmethod", AttributeError),
        ("probe_targets.legacy.Widget", TypeError),
        ("probe_targets.nosuchmodule.func", AttributeError),
        ("nosuchpackage.module.func", ImportError),
    ],
)
def test_bad_targets_raise_the_original_exception_types(target: str, error: type) -> None:
    """start() raises AttributeError, TypeError or ImportError, all also ProbeError."""
    probe = probes.attach_to(target)
    try:
        with pytest.raises(error) as info:
            probe.start()
        assert isinstance(info.value, diagnose.ProbeError)
    finally:
        probes.active_probes.pop(target, None)


def test_end_event_in_a_decorated_method_sees_the_inner_arguments(probeset: ProbeSet) -> None:
    """A probe on a decorated method runs in the function the decorator wrapped."""
    inst = probeset.attach("probe_targets.legacy.Widget.add5", "arg1", event="end")
    assert legacy.Widget().add5(13) == 118
    assert inst.results == [113]


def test_call_event_on_a_class_decorated_function(probeset: ProbeSet) -> None:
    """A function wrapped by a class-based decorator reads its own arguments by name."""
    inst = probeset.attach("probe_targets.legacy.total4", "arg4", event="call")
    assert legacy.total4(1, 2, 3, 4) == 10
    assert inst.results == [4]


def test_manager_check_call_patched_on_the_instance(probeset: ProbeSet) -> None:
    """mock.patch of diagnose.manager.check_call filters the calls an instrument sees."""

    def only_some_users(probe: Any, instrument: Any, *args: Any, **kwargs: Any) -> bool:
        return kwargs.get("user_id") in instrument.custom["valid_ids"]

    with mock.patch("diagnose.manager.check_call", only_some_users):
        inst = probeset.attach(
            "probe_targets.legacy.Widget.render",
            "result",
            custom={"valid_ids": [1, 2, 3]},
            mgr=diagnose.manager,
        )
        assert legacy.Widget().render("ok", user_id=2) == "<ok>"
        assert legacy.Widget().render("not ok", user_id=10004) == "<not ok>"
    assert inst.results == ["<ok>"]


def test_sensor_tags_set_while_attached(probeset: ProbeSet) -> None:
    """Tags added to a sensor's instrument while it is attached apply from the next call."""
    with diagnose.sensor("probe_targets.legacy.Widget.render") as s:
        legacy.Widget().render("tagless")
        s.custom["tags"] = '{"foo": "bar"}'
        legacy.Widget().render("tagged")
    assert s.log == [({}, "<tagless>"), ({"foo": "bar"}, "<tagged>")]
    assert "probe_targets.legacy.Widget.render" not in probes.active_probes
