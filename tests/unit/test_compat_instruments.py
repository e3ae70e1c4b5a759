"""Instruments as the original diagnose library's users see them (issue 8, items 1 to 4).

Written as a user's tests for the original 5.0.1 would be, against the public API only
(``diagnose``, ``diagnose.instruments``, ``diagnose.probes``, ``diagnose.managers``):
``finish()`` after every call, tags as a dict, ``LogInstrument.out``, and the
``diagnose.instruments.statsd`` plug-in point.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

import diagnose
import diagnose.instruments
from diagnose import probes
from diagnose.instruments import (
    HistogramInstrument,
    IncrementInstrument,
    Instrument,
    LogInstrument,
    ProbeTestInstrument,
)
from diagnose.managers import InstrumentManager

HERE = __name__
LATER = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)


def a_func(arg: Any) -> Any:
    extra = 13
    output = arg + extra
    return output


class Thing:
    def do(self, arg: Any, user_id: Any = None) -> str:
        return f"<{arg}>"


def count_tens(lower: int, upper: int) -> int:
    numbers = range(lower, upper)
    tens = len([n for n in numbers if n % 10 == 0])
    return tens


class Errors:
    """A manager's handle_error that keeps what it was given."""

    def __init__(self) -> None:
        self.caught: list[BaseException | None] = []

    def __call__(self, probe: Any = None, instrument: Any = None) -> None:
        self.caught.append(sys.exc_info()[1])


@pytest.fixture
def attach() -> Iterator[Callable[[str, Instrument], probes.FunctionProbe]]:
    """attach(target, instrument): put instrument on target's probe and start it."""
    attached: list[tuple[str, str]] = []

    def attach(target: str, instrument: Instrument) -> probes.FunctionProbe:
        probe = probes.attach_to(target)
        key = f"compat-{len(attached)}"
        probe.instruments[key] = instrument
        probe.start()
        attached.append((target, key))
        return probe

    yield attach
    for target, key in attached:
        probe = probes.active_probes.pop(target, None)
        if probe is not None:
            probe.instruments.pop(key, None)
            probe.stop()


@contextlib.contextmanager
def spec_probe(
    type_: str, name: str, target: str, value: str, event: str = "return", custom: Any = None
) -> Iterator[probes.FunctionProbe]:
    """The original's ProbeTestCase.probe(): one spec applied through diagnose.manager."""
    mgr = diagnose.manager
    spec_id = f"probe-{name}"
    mgr.specs[spec_id] = {
        "target": target,
        "instrument": {
            "type": type_,
            "name": name,
            "value": value,
            "event": event,
            "custom": custom or {},
        },
        "lifespan": 1,
        "lastmodified": datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
        "applied": {},
    }
    try:
        mgr.apply()
        yield probes.active_probes[target]
    finally:
        mgr.specs.pop(spec_id, None)
        mgr.apply()


# --- item 1: finish() after every call ---------------------------------------------------


def test_finish_called_starts_false() -> None:
    """finish_called is False on the class and on a new instrument."""
    assert ProbeTestInstrument.finish_called is False
    assert ProbeTestInstrument("t", "result").finish_called is False


@pytest.mark.parametrize("event, value", [("call", "arg"), ("return", "result"), ("end", "extra")])
def test_finish_called_after_a_call_that_returned(attach: Any, event: str, value: str) -> None:
    """After a call that returned, the instrument's finish() was called."""
    inst = ProbeTestInstrument("a_func", value, event=event, expires=LATER)
    attach(f"{HERE}.a_func", inst)
    assert a_func(1) == 14
    assert inst.finish_called is True


@pytest.mark.parametrize("event, value", [("call", "arg"), ("return", "result"), ("end", "extra")])
def test_finish_called_after_a_call_that_raised(attach: Any, event: str, value: str) -> None:
    """After a call that raised, the instrument's finish() was called."""
    inst = ProbeTestInstrument("a_func", value, event=event, expires=LATER)
    attach(f"{HERE}.a_func", inst)
    with pytest.raises(TypeError):
        a_func(None)
    assert inst.finish_called is True


def test_finish_called_in_the_call_whose_end_value_failed(
    attach: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original's test_end_event_exception_in_value: the failing call still finishes."""
    errors = Errors()
    mgr = InstrumentManager()
    monkeypatch.setattr(mgr, "handle_error", errors)
    inst = ProbeTestInstrument("a_func", "unknown", event="end", expires=LATER, mgr=mgr)
    attach(f"{HERE}.a_func", inst)
    assert a_func(1000) == 1013
    assert inst.results == []
    assert inst.expires == inst.error_expiration
    assert [str(e) for e in errors.caught] == ["name 'unknown' is not defined"]
    assert inst.finish_called is True


def test_finish_once_per_call_after_the_instrument_fired(attach: Any) -> None:
    """finish() is a per-call hook: once after each call, after fire()."""
    events: list[str] = []

    class Recording(ProbeTestInstrument):
        def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
            super().fire(_globals, _locals)
            events.append("fire")

        def finish(self) -> None:
            events.append("finish")

    attach(f"{HERE}.a_func", Recording("a_func", "result", expires=LATER))
    a_func(1)
    with pytest.raises(TypeError):
        a_func(None)
    a_func(2)
    assert events == ["fire", "finish"] * 3


def test_finish_called_when_check_call_said_no(attach: Any) -> None:
    """In the original every instrument of the probe finishes after each call."""

    class Picky(ProbeTestInstrument):
        def check_call(self, probe: Any, *args: Any, **kwargs: Any) -> bool:
            return False

    inst = Picky("a_func", "result", expires=LATER)
    attach(f"{HERE}.a_func", inst)
    a_func(1)
    assert inst.results == []
    assert inst.finish_called is True


# --- item 2: tags are a dict ------------------------------------------------------------


class TaggingManager(InstrumentManager):
    def get_tags(self) -> dict[str, Any]:
        return {"host": "web-1", "region": "eu"}


def test_merge_tags_returns_custom_tags_merged_with_the_managers() -> None:
    """merge_tags merges the instrument's custom tags with the manager's get_tags()."""
    mgr = TaggingManager()
    inst = ProbeTestInstrument("t", "x", custom={"tags": "{'user': x, 'host': 'mine'}"}, mgr=mgr)
    tags = inst.merge_tags({}, {"x": 7})
    assert tags == {"user": 7, "host": "web-1", "region": "eu"}


def test_merge_tags_without_any_tags_is_an_empty_dict() -> None:
    """merge_tags with no custom and no manager tags is an empty dict."""
    inst = ProbeTestInstrument("t", "x", mgr=InstrumentManager())
    assert inst.merge_tags({}, {}) == {}


def test_merge_tags_of_a_non_dict_is_a_type_error() -> None:
    """custom tags that evaluate to something other than a dict raise TypeError."""
    inst = ProbeTestInstrument("t", "x", custom={"tags": "['a']"}, mgr=InstrumentManager())
    with pytest.raises(TypeError):
        inst.merge_tags({}, {})


def test_probe_test_instrument_log_holds_dict_tags(attach: Any) -> None:
    """ProbeTestInstrument.log holds each call's tags as a dict with its value."""
    inst = ProbeTestInstrument(
        "a_func", "result", custom={"tags": "{'input': arg, 'flag': None}"}, expires=LATER
    )
    attach(f"{HERE}.a_func", inst)
    a_func(5)
    assert inst.log == [({"input": 5, "flag": None}, 18)]
    assert inst.results == [18]


def test_sensor_log_holds_dict_tags() -> None:
    """The original's test_basic_sensor."""
    target = f"{HERE}.Thing.do"
    with diagnose.sensor(target) as s:
        assert s.log == []
        Thing().do("tagless")
        s.custom["tags"] = '{"foo": "bar"}'
        Thing().do("tagged")
        assert s.log == [({}, "<tagless>"), ({"foo": "bar"}, "<tagged>")]
    assert probes.active_probes.get(target) is None


def test_hotspots_in_tags_give_a_dict(attach: Any) -> None:
    """The original's test_slowest_line: a tag built from hotspots."""
    inst = ProbeTestInstrument(
        "count_tens.worst",
        "hotspots.worst.time",
        custom={"tags": '{"source": "%s:%s" % (hotspots.worst.lineno, hotspots.worst.source)}'},
        expires=LATER,
    )
    line = count_tens.__code__.co_firstlineno + 2  # read before the probe swaps the code
    attach(f"{HERE}.count_tens", inst)
    assert count_tens(0, 20000) == 2000
    assert [tags for tags, _value in inst.log] == [
        {"source": f"{line}:    tens = len([n for n in numbers if n % 10 == 0])\n"}
    ]
    assert [type(value) for _tags, value in inst.log] == [float]


def test_log_instrument_with_tags_shows_the_dict(attach: Any) -> None:
    """A log instrument with tags prints Probe (NAME)[tags=TAGS] = VALUE."""
    buf = io.StringIO()
    inst = LogInstrument("foo", "len(arg)", custom={"tags": "{'n': 1}"}, expires=LATER)
    attach(f"{HERE}.Thing.do", inst)
    with contextlib.redirect_stdout(buf):
        assert Thing().do("ok") == "<ok>"
    assert buf.getvalue() == "Probe (foo)[tags={'n': 1}] = 2\n"


@pytest.mark.parametrize("cls, kind", [(HistogramInstrument, "h"), (IncrementInstrument, "c")])
def test_dogstatsd_tags_none_value_gives_the_bare_key(
    attach: Any, statsd: socket.socket, cls: type, kind: str
) -> None:
    """A tag whose value is None goes to DogStatsD as the bare key."""
    attach(
        f"{HERE}.a_func",
        cls("m", "result", custom={"tags": "{'b': 1, 'flag': None}"}, expires=LATER),
    )
    a_func(1)
    data, _addr = statsd.recvfrom(65536)
    assert data.decode().strip() == f"m:14|{kind}|#b:1,flag"


# --- item 3: LogInstrument.out ----------------------------------------------------------


def test_log_instrument_out_patched_with_mock_patch_string(attach: Any) -> None:
    """The original's test_log_instrument, minus the documented "[tags={}]"."""
    with mock.patch("diagnose.instruments.LogInstrument.out", io.StringIO()) as out:
        with spec_probe("log", "foo", f"{HERE}.Thing.do", "len(arg)"):
            result = Thing().do("ok")
        assert result == "<ok>"
        assert out.getvalue() == "Probe (foo) = 2\n"


def test_log_instrument_out_patched_on_the_class(
    attach: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """LogInstrument.out patched on the class receives the lines, and stdout none."""
    buf = io.StringIO()
    attach(f"{HERE}.Thing.do", LogInstrument("foo", "arg", expires=LATER))
    with mock.patch.object(LogInstrument, "out", buf):
        Thing().do("ok")
    assert buf.getvalue() == "Probe (foo) = ok\n"
    assert capsys.readouterr().out == ""


def test_log_instrument_subclass_with_its_own_out(attach: Any) -> None:
    """A LogInstrument subclass with its own out writes there."""
    buf = io.StringIO()

    class ToBuffer(LogInstrument):
        out = buf

    attach(f"{HERE}.Thing.do", ToBuffer("foo", "arg", expires=LATER))
    Thing().do("ok")
    assert buf.getvalue() == "Probe (foo) = ok\n"


def test_log_instrument_default_out_is_the_current_stdout(
    attach: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default each write goes to sys.stdout as it is then (redirections work)."""
    attach(f"{HERE}.Thing.do", LogInstrument("foo", "arg", expires=LATER))
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        Thing().do("one")
    with contextlib.redirect_stdout(second):
        Thing().do("two")
    Thing().do("three")
    assert first.getvalue() == "Probe (foo) = one\n"
    assert second.getvalue() == "Probe (foo) = two\n"
    assert capsys.readouterr().out == "Probe (foo) = three\n"
    assert hasattr(LogInstrument, "out")


def test_log_instrument_logger(attach: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A logger set on LogInstrument receives the lines as INFO records."""
    attach(f"{HERE}.Thing.do", LogInstrument("foo", "arg", expires=LATER))
    with (
        mock.patch.object(LogInstrument, "logger", logging.getLogger("probes")),
        caplog.at_level(logging.INFO, logger="probes"),
    ):
        Thing().do("ok")
    assert [r.getMessage() for r in caplog.records] == ["Probe (foo) = ok"]


# --- item 4: diagnose.instruments.statsd ------------------------------------------------


def test_statsd_module_attribute_is_none_by_default() -> None:
    """diagnose.instruments.statsd is None until configured."""
    assert diagnose.instruments.statsd is None


def test_hist_calls_the_patched_statsd() -> None:
    """The original's test_hist_instrument."""
    with mock.patch("diagnose.instruments.statsd") as statsd:
        with spec_probe("hist", "grr", f"{HERE}.Thing.do", "len(arg)"):
            result = Thing().do("ok")
        assert result == "<ok>"
        assert statsd.method_calls[0] == mock.call.histogram("grr", 2, tags=[])


def test_hist_tags_reach_the_patched_statsd() -> None:
    """The original's test_hist_tags."""
    num = 496942560
    with mock.patch("diagnose.instruments.statsd") as statsd:
        with spec_probe(
            "hist", "baz", f"{HERE}.a_func", "result", custom={"tags": "{'output': arg}"}
        ):
            assert a_func(num) == num + 13
        assert statsd.method_calls[0] == mock.call.histogram(
            "baz", num + 13, tags=[f"output:{num}"]
        )


def test_incr_calls_the_patched_statsd() -> None:
    """An incr spec calls the patched statsd's increment with the value and tags."""
    with mock.patch("diagnose.instruments.statsd") as statsd:
        with spec_probe("incr", "klee", f"{HERE}.Thing.do", "len(arg)"):
            assert Thing().do("ok") == "<ok>"
        assert statsd.method_calls[0] == mock.call.increment("klee", 2, tags=[])


def test_incr_of_a_non_numeric_value_goes_to_handle_error() -> None:
    """The original's test_incr_nonnumeric."""
    errors = Errors()
    with (
        mock.patch("diagnose.manager.handle_error", errors),
        mock.patch("diagnose.instruments.statsd") as statsd,
    ):
        with spec_probe("incr", "klee", f"{HERE}.Thing.do", "arg"):
            assert Thing().do("ok") == "<ok>"
        assert statsd.method_calls == []
    assert [e.args for e in errors.caught if e is not None] == [
        ("Cannot send non-numeric metric: ok",)
    ]


def test_end_and_return_hist_instruments_in_order() -> None:
    """The original's test_multiple_instruments."""
    mgr = diagnose.manager
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)

    def spec(name: str, value: str, event: str) -> dict[str, Any]:
        return {
            "target": f"{HERE}.a_func",
            "instrument": {"type": "hist", "name": name, "value": value, "event": event},
            "lifespan": 1,
            "lastmodified": now,
            "applied": {},
        }

    with mock.patch("diagnose.instruments.statsd") as statsd:
        try:
            mgr.specs["a_func_end"] = spec("a_func_end", "output", "end")
            mgr.specs["a_func_return"] = spec("a_func_return", "result", "return")
            mgr.apply()
            assert a_func(78) == 91
        finally:
            mgr.specs.pop("a_func_end", None)
            mgr.specs.pop("a_func_return", None)
            mgr.apply()
        assert statsd.method_calls == [
            mock.call.histogram("a_func_end", 91, tags=[]),
            mock.call.histogram("a_func_return", 91, tags=[]),
        ]


def test_a_users_own_statsd_object(attach: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any object with histogram() and increment() taking tags= will do."""
    sent: list[tuple[str, str, Any, Any]] = []

    class MyStatsd:
        def histogram(self, name: str, value: Any, tags: Any = None) -> None:
            sent.append(("histogram", name, value, tags))

        def increment(self, name: str, value: Any = 1, tags: Any = None) -> None:
            sent.append(("increment", name, value, tags))

    monkeypatch.setattr(diagnose.instruments, "statsd", MyStatsd())
    attach(
        f"{HERE}.a_func",
        HistogramInstrument("h", "result", custom={"tags": "{'z': 1, 'a': None}"}, expires=LATER),
    )
    attach(f"{HERE}.Thing.do", IncrementInstrument("i", "len(arg)", expires=LATER))
    a_func(1)
    Thing().do("abc")
    assert sent == [("histogram", "h", 14, ["a", "z:1"]), ("increment", "i", 3, [])]
