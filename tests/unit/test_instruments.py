"""Instruments: what they write, what they keep, how they attach, when they fire."""

from __future__ import annotations

import datetime
import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import diagnose
from diagnose import LogInstrument, ProbeTestInstrument
from diagnose.probes import active_probes
from probe_targets import shop
from support.probes import CapturingManager, ProbeSet


@pytest.fixture
def probes() -> Iterator[ProbeSet]:
    """Probes the test attaches; all stopped and forgotten at its end."""
    with ProbeSet() as ps:
        yield ps


# --- LogInstrument ----------------------------------------------------------------------


def test_log_writes_name_and_value_to_stdout(
    probes: ProbeSet, capsys: pytest.CaptureFixture[str]
) -> None:
    """LogInstrument writes ``Probe (NAME) = VALUE`` on a line of its own."""
    probes.attach("probe_targets.shop.price", "result * 10", cls=LogInstrument, name="price.x10")
    assert shop.price(5) == 10
    assert capsys.readouterr().out == "Probe (price.x10) = 100\n"


def test_log_writes_to_the_current_stdout(
    probes: ProbeSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LogInstrument writes to whatever sys.stdout is when it fires, not when it was made."""
    probes.attach("probe_targets.shop.price", "amount", cls=LogInstrument, name="amt")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    shop.price(1)
    monkeypatch.setattr(sys, "stdout", second)
    shop.price(2)
    assert (first.getvalue(), second.getvalue()) == ("Probe (amt) = 1\n", "Probe (amt) = 2\n")


def test_log_with_tags(probes: ProbeSet, capsys: pytest.CaptureFixture[str]) -> None:
    """With custom["tags"] giving a dict, the line is ``Probe (NAME)[tags=TAGS] = VALUE``."""
    probes.attach(
        "probe_targets.shop.price",
        "result",
        cls=LogInstrument,
        name="tagged",
        custom={"tags": "{'rate': rate, 'kind': 'retail'}"},
    )
    shop.price(5, rate=3)
    out = capsys.readouterr().out
    assert out.startswith("Probe (tagged)[tags=") and out.endswith("] = 15\n")
    tags = out[len("Probe (tagged)[tags=") : -len("] = 15\n")]
    assert tags == str({"rate": 3, "kind": "retail"})
    assert out.count("\n") == 1


def test_tags_that_are_not_a_dict_are_an_error(probes: ProbeSet) -> None:
    """custom["tags"] that gives something other than a dict is an instrument error."""
    inst = probes.attach(
        "probe_targets.shop.price", "result", custom={"tags": "['a', 'b']"}, name="t"
    )
    assert shop.price(5) == 10
    assert inst.results == []
    assert [i for _p, i, _e in probes.mgr.errors] == [inst]


def test_log_cuts_long_values(probes: ProbeSet, capsys: pytest.CaptureFixture[str]) -> None:
    """A value over 2000 characters is cut so that the written value is at most 2000."""
    probes.attach("probe_targets.shop.price", "'x' * 5000", cls=LogInstrument, name="long")
    shop.price(1)
    out = capsys.readouterr().out
    prefix = "Probe (long) = "
    assert out.startswith(prefix + "x" * 1000)
    value = out[len(prefix) : -1]
    assert 1000 < len(value) <= 2000


def test_log_can_go_to_logging(
    probes: ProbeSet,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With LogInstrument.logger set, lines go to that logger at INFO and not to stdout."""
    logger = logging.getLogger("test_instruments.probes")
    monkeypatch.setattr(LogInstrument, "logger", logger)
    probes.attach("probe_targets.shop.price", "result", cls=LogInstrument, name="logged")
    with caplog.at_level(logging.INFO, logger=logger.name):
        shop.price(2)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (logger.name, logging.INFO, "Probe (logged) = 4")
    ]
    assert capsys.readouterr().out == ""


# --- ProbeTestInstrument, events, expiry ----------------------------------------------------


def test_test_instrument_keeps_log_and_results(probes: ProbeSet) -> None:
    """ProbeTestInstrument keeps (tags, value) in log; results lists the values."""
    inst = probes.attach(
        "probe_targets.shop.price", "result", custom={"tags": "{'a': amount}"}, name="kept"
    )
    shop.price(1)
    shop.price(2)
    assert inst.log == [({"a": 1}, 2), ({"a": 2}, 4)]
    assert inst.results == [2, 4]


@pytest.mark.parametrize(("internal", "event"), [(True, "end"), (False, "return")])
def test_internal_is_the_old_spelling_of_end(internal: bool, event: str) -> None:
    """internal=True means event "end", internal=False means "return"."""
    inst = ProbeTestInstrument("n", "x", internal=internal)
    assert inst.event == event
    assert inst.internal is internal


def test_internal_instrument_reads_locals(probes: ProbeSet) -> None:
    """An instrument made with internal=True fires inside the target and reads its locals."""
    inst = ProbeTestInstrument("inner", "subtotal", internal=True, mgr=probes.mgr)
    probe = diagnose.probes.attach_to("probe_targets.shop.price")
    probe.instruments["inner"] = inst
    probe.start()
    assert shop.price(4, discount=1) == 7
    assert inst.results == [8]


def test_unknown_event_is_refused() -> None:
    """An instrument with an event other than call, return or end cannot be made."""
    with pytest.raises(ValueError, match="event"):
        ProbeTestInstrument("n", "x", event="later")


@pytest.mark.parametrize(
    "expires",
    [datetime.datetime(2000, 1, 1), datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)],
    ids=["naive", "aware"],
)
def test_expired_instrument_never_fires(probes: ProbeSet, expires: datetime.datetime) -> None:
    """An instrument whose expires is in the past never fires and leaves the code original."""
    original = shop.price.__code__
    inst = probes.attach("probe_targets.shop.price", expires=expires)
    assert shop.price(1) == 2
    assert inst.results == []
    assert shop.price.__code__ is original


def test_instrument_expiring_later_fires(probes: ProbeSet) -> None:
    """An instrument whose expires is in the future fires."""
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    inst = probes.attach("probe_targets.shop.price", expires=later)
    shop.price(1)
    assert inst.results == [2]


def test_setting_expires_in_the_past_detaches(probes: ProbeSet) -> None:
    """Setting a live instrument's expires to the past puts the original code back."""
    original = shop.price.__code__
    inst = probes.attach("probe_targets.shop.price")
    shop.price(1)
    inst.expires = datetime.datetime(2000, 1, 1)
    assert shop.price.__code__ is original
    shop.price(2)
    assert inst.results == [2]


def test_check_call_can_refuse(probes: ProbeSet) -> None:
    """An instrument whose check_call says no for a call does not fire for it."""

    class EvenOnly(ProbeTestInstrument):
        def check_call(self, probe: object, *args: Any, **kwargs: Any) -> bool:
            return args[0] % 2 == 0

    inst = probes.attach("probe_targets.shop.price", "amount", cls=EvenOnly)
    for amount in range(5):
        assert shop.price(amount) == amount * 2
    assert inst.results == [0, 2, 4]


def test_manager_check_call_can_refuse(probes: ProbeSet) -> None:
    """A manager whose check_call says no stops its instruments firing for that call."""

    class OddOnly(CapturingManager):
        def check_call(self, probe: object, instrument: object, *args: Any, **kw: Any) -> bool:
            return args[0] % 2 == 1

    inst = probes.attach("probe_targets.shop.price", "amount", mgr=OddOnly())
    for amount in range(5):
        shop.price(amount)
    assert inst.results == [1, 3]


def test_global_namespace_is_readable(probes: ProbeSet) -> None:
    """Names in the manager's global_namespace can be read by every event's expression."""
    probes.mgr.global_namespace["double"] = lambda x: 2 * x
    insts = [
        probes.attach("probe_targets.shop.price", "double(amount)", event=e, name=e)
        for e in ("call", "return", "end")
    ]
    shop.price(3)
    assert [i.results for i in insts] == [[6], [6], [6]]


def test_hotspots_find_the_slow_line(probes: ProbeSet) -> None:
    """A return instrument mentioning hotspots gets worst and slowest with time, lineno, source."""
    inst = probes.attach("probe_targets.shop.slow", "(hotspots.worst, hotspots.slowest)")
    previous = sys.gettrace()
    shop.slow(5)
    assert sys.gettrace() is previous
    [(worst, slowest)] = inst.results
    for spot in (worst, slowest):
        assert spot.time > 0
        assert "# slow line" in spot.source
        with open(shop.__file__) as f:
            assert "# slow line" in f.read().splitlines()[spot.lineno - 1]
    assert worst.time >= slowest.time


def test_hotspots_in_tags(probes: ProbeSet) -> None:
    """hotspots can be read from custom["tags"] as well as from the value."""
    inst = probes.attach(
        "probe_targets.shop.slow", "result", custom={"tags": "{'line': hotspots.worst.lineno}"}
    )
    shop.slow(3)
    [(tags, value)] = inst.log
    assert value == 3 * sum(range(200_000))
    assert list(tags) == ["line"] and isinstance(tags["line"], int)


# --- attaching ----------------------------------------------------------------------------


def test_instrument_as_decorator_attaches_for_good() -> None:
    """An instrument used as a decorator probes the function it decorates, for good."""
    inst = ProbeTestInstrument("deco", "result", mgr=CapturingManager())
    before = dict(active_probes)
    try:

        @inst
        def triple(x: int) -> int:
            return 3 * x

        assert triple(2) == 6
        assert triple(3) == 9
        assert inst.results == [6, 9]
        diagnose.manager.apply()
        assert triple(4) == 12
        assert inst.results == [6, 9, 12]
    finally:
        for target, probe in list(active_probes.items()):
            if before.get(target) is not probe:
                probe.stop()
                del active_probes[target]


def test_two_instruments_as_decorators_both_fire() -> None:
    """Two instruments stacked as decorators on one function both fire."""
    mgr = CapturingManager()
    outer = ProbeTestInstrument("outer", "result", mgr=mgr)
    inner = ProbeTestInstrument("inner", "x", mgr=mgr)
    before = dict(active_probes)
    try:

        @outer
        @inner
        def square(x: int) -> int:
            return x * x

        assert square(3) == 9
        assert (outer.results, inner.results) == ([9], [3])
    finally:
        for target, probe in list(active_probes.items()):
            if before.get(target) is not probe:
                probe.stop()
                del active_probes[target]


def test_second_function_probe_for_a_target_raises(probes: ProbeSet) -> None:
    """FunctionProbe(target) for a target that has a probe raises RuntimeError."""
    probes.attach("probe_targets.shop.price")
    with pytest.raises(RuntimeError):
        diagnose.FunctionProbe("probe_targets.shop.price")


def test_attach_to_returns_the_same_probe(probes: ProbeSet) -> None:
    """attach_to gives the registered probe of a target, making it only the first time."""
    assert "probe_targets.shop.add" not in active_probes
    first = diagnose.probes.attach_to("probe_targets.shop.add")
    assert active_probes["probe_targets.shop.add"] is first
    assert diagnose.attach_to("probe_targets.shop.add") is first
    assert isinstance(first, diagnose.FunctionProbe)
    assert first.target == "probe_targets.shop.add"


def test_function_probe_as_context_manager(probes: ProbeSet) -> None:
    """A FunctionProbe used as a context manager attaches inside and forgets itself after."""
    original = shop.add.__code__
    inst = ProbeTestInstrument("ctx", "result", mgr=probes.mgr)
    with diagnose.FunctionProbe("probe_targets.shop.add", {"ctx": inst}) as probe:
        assert active_probes["probe_targets.shop.add"] is probe
        assert shop.add(1, 2) == 3
    assert inst.results == [3]
    assert shop.add.__code__ is original
    assert "probe_targets.shop.add" not in active_probes


def test_adding_and_removing_instruments_on_a_started_probe(probes: ProbeSet) -> None:
    """Instruments added to a started probe fire at once; removed ones stop at once."""
    first = probes.attach("probe_targets.shop.add", "a", name="first")
    probe = active_probes["probe_targets.shop.add"]
    second = ProbeTestInstrument("second", "b", mgr=probes.mgr)
    probe.instruments["second"] = second
    shop.add(1, 2)
    del probe.instruments["first"]
    shop.add(3, 4)
    assert (first.results, second.results) == ([1], [2, 4])


def test_sensor_yields_a_test_instrument_and_cleans_up() -> None:
    """diagnose.sensor attaches a ProbeTestInstrument for the with-block only."""
    original = shop.add.__code__
    with diagnose.sensor("probe_targets.shop.add", "a + b") as s:
        assert isinstance(s, ProbeTestInstrument)
        assert shop.add(2, 3) == 5
    assert s.results == [5]
    shop.add(4, 4)
    assert s.results == [5]
    assert shop.add.__code__ is original
    assert "probe_targets.shop.add" not in active_probes


def test_sensor_on_a_missing_target_raises_and_cleans_up() -> None:
    """diagnose.sensor on a target that does not exist raises ProbeError and leaves nothing."""
    with pytest.raises(diagnose.ProbeError), diagnose.sensor("probe_targets.shop.missing"):
        pass
    assert "probe_targets.shop.missing" not in active_probes
