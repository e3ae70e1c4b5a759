"""The exception instrument in one process: what reaches the caller is untouched, raises are
counted by fingerprint, the first few captured with the locals of their frames, under the
snapshot limits and redaction, and nothing the capture does can hurt the target."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import diagnose
from diagnose import SpecError, probes, validate_spec
from diagnose._output import frames as framing
from diagnose._swap import patch as patching
from diagnose.aggregates import AGGREGATES
from diagnose.instruments import ExceptionInstrument
from diagnose.instruments import exception as exceptions
from diagnose.instruments.log import LogInstrument

TARGET = f"{__name__}.checkout"
SECRET = "s3cr3t-hunter2-value"


class Unwalkable:
    """An object whose __class__ raises: isinstance() on it raises, as the snapshot walk does."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: PLW3201
        raise RuntimeError("no class for you")


def checkout(n: int, password: str = SECRET) -> int:
    """Raise ValueError for odd n, KeyError for n divisible by 4, else return n."""
    basket = {"n": n, "token": SECRET, "items": list(range(3))}
    if n % 2:
        return _validate(n, basket)
    if n % 4 == 0:
        raise KeyError(f"item-{n}")
    return n


def _validate(n: int, basket: dict[str, Any]) -> int:
    quantity = n * 10
    return _deeper(quantity)


def _deeper(quantity: int) -> int:
    raise ValueError(f"bad quantity {quantity}: password={SECRET}")


def unwalkable(n: int) -> None:
    """Raise with a local that no snapshot can walk."""
    evil = Unwalkable()
    fine = n
    raise RuntimeError(f"failed with {fine} and {type(evil).__name__}")


class Payload:
    """A local whose life the tests watch."""


PAYLOADS: list[weakref.ref[Payload]] = []


def holder() -> None:
    """Raise with a local Payload (watched through PAYLOADS)."""
    payload = Payload()
    PAYLOADS.append(weakref.ref(payload))
    raise ValueError("x")


async def fetch(n: int) -> int:
    """A coroutine that raises."""
    await asyncio.sleep(0)
    raise LookupError(f"no {n}")


def leave(code: int) -> None:
    """Exit, which is not an error."""
    raise SystemExit(code)


def outcome(func: Callable[..., Any], *args: Any) -> BaseException:
    """Return what calling func raises."""
    try:
        func(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("it did not raise")


@pytest.fixture
def probed() -> Iterator[Callable[..., ExceptionInstrument]]:
    """Attach exception instruments made in code to targets; detach them at the end."""
    attached: list[probes.FunctionProbe] = []

    def attach(target: str = TARGET, **kwargs: Any) -> ExceptionInstrument:
        probe = probes.attach_to(target)
        instrument = ExceptionInstrument("exc", **kwargs)
        probe.instruments["exc"] = instrument
        probe.start()
        attached.append(probe)
        return instrument

    yield attach
    for probe in attached:
        probe.stop()
        probes.active_probes.pop(probe.target, None)


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Collect what instruments write as log lines."""
    written: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            written.append(text)

    monkeypatch.setattr(LogInstrument, "out", Out())
    monkeypatch.setattr(LogInstrument, "logger", None)
    return written


def test_the_caller_gets_the_same_exception_with_the_same_traceback(probed: Any) -> None:
    """The exception reaching the caller is the object raised, and its traceback lists the
    frames it lists without the probe: no frame of the probe's."""
    raised: list[BaseException] = []

    def spy(n: int) -> int:
        try:
            return checkout(n)
        except BaseException as exc:
            raised.append(exc)
            raise

    plain = traceback.extract_tb(outcome(spy, 3).__traceback__)
    raised.clear()
    instrument = probed()
    seen = outcome(spy, 3)
    assert seen is raised[0]
    assert traceback.extract_tb(seen.__traceback__) == plain
    assert sum(instrument.counts.values()) == 1


def test_a_call_that_returns_runs_no_line_of_the_instrument(probed: Any, monkeypatch: Any) -> None:
    """The wrapper has nothing to run after a return for an exception instrument alone; a
    return, and a raise that is not an Exception, never reach it."""
    instrument = probed()
    fired: list[Any] = []
    monkeypatch.setattr(instrument, "fire", lambda g, ns: fired.append(ns))
    patch = patching._patches[id(checkout)]
    assert patch.plan is not None
    sections = patch.plan.sections()
    assert sections.after == [] and sections.before == []
    assert checkout(2) == 2
    assert fired == []
    outcome(checkout, 1)
    assert len(fired) == 1 and isinstance(fired[0]["result"], ValueError)


def test_raises_are_counted_by_fingerprint_whatever_their_message(probed: Any) -> None:
    """One fingerprint per type and code path: messages and values do not matter; another
    line or type gives another."""
    instrument = probed()
    for n in (1, 3, 5, 4, 8):
        outcome(checkout, n)
    counts = instrument.counts
    assert sorted(counts.values()) == [2, 3]
    assert all(len(fp) == 16 and int(fp, 16) >= 0 for fp in counts)


def test_a_capture_has_the_innermost_frames_with_their_locals(probed: Any, lines: Any) -> None:
    """A capture holds type, message, fingerprint and the innermost N frames from the
    target's inward, innermost last, each with function, file, line and locals."""
    instrument = probed(custom={"frames": 2})
    exc = outcome(checkout, 3)
    capture = instrument.last
    assert capture is not None
    assert capture["type"] == "ValueError"
    assert capture["fingerprint"] in instrument.counts
    frames = capture["frames"]
    assert [f["function"] for f in frames] == ["_validate", "_deeper"]
    assert frames[-1]["line"] == traceback.extract_tb(exc.__traceback__)[-1].lineno
    assert Path(frames[-1]["file"]) == Path(__file__)
    assert frames[-1]["locals"] == {"quantity": 30}
    assert frames[0]["locals"]["basket"]["items"] == [0, 1, 2]
    assert lines and lines[0].startswith("Exception (exc) = {")
    assert json.loads(lines[0].split(" = ", 1)[1]) == capture


def test_frames_default_to_five_from_the_target_inward(probed: Any) -> None:
    """With no frames asked, up to 5 are kept, never a frame outside the target."""
    instrument = probed()
    outcome(checkout, 1)
    assert instrument.last is not None
    assert [f["function"] for f in instrument.last["frames"]] == [
        "checkout",
        "_validate",
        "_deeper",
    ]


def test_no_secret_reaches_a_capture(probed: Any, lines: Any) -> None:
    """Secret-named locals and keys are <redacted>, and the message loses the secret both
    after a secret name and verbatim."""
    instrument = probed()
    outcome(checkout, 1)
    capture = instrument.last
    assert capture is not None
    text = json.dumps(capture)
    assert SECRET not in text and SECRET not in "".join(lines)
    top = capture["frames"][0]["locals"]
    assert top["password"] == "<redacted>" and top["basket"]["token"] == "<redacted>"
    assert capture["message"] == "bad quantity 10: password=<redacted>"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("login failed: password=hunter2", "login failed: password=<redacted>"),
        ("https://x/?api_key=abc&page=2", "https://x/?api_key=<redacted>&page=2"),
        (
            '{"Authorization": "Bearer xyz", "user": "bob"}',
            '{"Authorization": "<redacted>", "user": "bob"}',
        ),
        ("no secret here: count=3", "no secret here: count=3"),
    ],
)
def test_messages_lose_the_value_after_a_secret_name(text: str, shown: str) -> None:
    """The value after a secret name and a separator is redacted, up to a delimiter."""
    assert framing.redact_named_values(text) == shown


def test_messages_are_cut_to_255_characters() -> None:
    """A long message is cut, ending in an ellipsis."""
    text = framing.message(ValueError("x" * 1000))
    assert len(text) == 255 and text.endswith("…")


def test_a_local_that_cannot_be_walked_is_an_error_counted_not_raised(probed: Any) -> None:
    """A local whose attribute access raises costs its own value only: the caller gets the
    original exception, the error is counted, the instrument goes on counting."""
    target = f"{__name__}.unwalkable"
    instrument = probed(target)
    exc = outcome(unwalkable, 7)
    assert isinstance(exc, RuntimeError) and "failed with 7" in str(exc)
    capture = instrument.last
    assert capture is not None
    names = capture["frames"][-1]["locals"]
    assert names["evil"] == "<capture failed: RuntimeError>" and names["fine"] == 7
    assert instrument.stats.errors == 1 and instrument.error is None
    outcome(unwalkable, 8)
    assert sum(instrument.counts.values()) == 2


def test_a_message_whose_str_raises_is_shown_as_such(probed: Any) -> None:
    """An exception whose __str__ raises is still counted and captured."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("nope")

    assert framing.message(Broken()) == "<str() of the exception failed: RuntimeError>"


def test_locals_keep_to_the_snapshot_limits(monkeypatch: Any) -> None:
    """Strings are cut at 255 characters, collections at 100 items, and all the frames'
    locals share 32 KiB."""

    def deep(level: int, blob: str, many: list[int]) -> None:
        if level:
            deep(level - 1, blob, many)
        raise ValueError("deep")

    exc = outcome(deep, 9, "y" * 5000, list(range(1000)))
    frames, failures = framing.capture_frames(exc.__traceback__, 10)
    assert failures == 0 and len(frames) == 10
    assert len(frames[-1]["locals"]["blob"]) == 256  # 255 and the ellipsis
    assert len(frames[-1]["locals"]["many"]) == 101  # 100 and the truncation note
    total = len(json.dumps(frames))
    assert total <= 36 * 1024
    assert any(f["locals"].get("@truncated") for f in frames)


def test_the_rate_limits_captures_never_counts(probed: Any) -> None:
    """Over the capture rate, raises are still counted; the captures skipped are dropped."""
    instrument = probed(custom={"first": 100})
    instrument.rate = 1
    for n in range(1, 40, 2):
        outcome(checkout, n)
    assert sum(instrument.counts.values()) == 20
    assert len(instrument.captures) == 1
    assert instrument.stats.dropped == 19


def test_the_first_k_of_each_fingerprint_are_captured(probed: Any) -> None:
    """Without a fleet, the first K of each fingerprint are captured in the process."""
    instrument = probed(custom={"first": 2})
    for n in (1, 3, 5, 7, 4, 8, 12):
        outcome(checkout, n)
    types = [c["type"] for c in instrument.captures]
    assert sorted(types) == ["KeyError", "KeyError", "ValueError", "ValueError"]


def test_fingerprints_past_the_bound_count_under_overflow(probed: Any, monkeypatch: Any) -> None:
    """Past MAX_FINGERPRINTS in a process, raises count under the overflow fingerprint and
    are not captured."""
    monkeypatch.setattr(exceptions, "MAX_FINGERPRINTS", 1)
    instrument = probed()
    for n in (1, 4, 8):
        outcome(checkout, n)
    assert instrument.counts[exceptions.OVERFLOW] == 2
    assert [c["type"] for c in instrument.captures] == ["ValueError"]


def test_nothing_keeps_the_raising_frames_alive(probed: Any) -> None:
    """Once the caller drops the exception, the locals of its frames are freed: the
    instrument kept no frame, traceback or local."""

    instrument = probed(f"{__name__}.holder")
    exc: BaseException | None = outcome(holder)
    assert sum(instrument.counts.values()) == 1 and instrument.last is not None
    del exc
    gc.collect()
    assert PAYLOADS[-1]() is None


def test_an_async_target_is_counted_with_its_frames(probed: Any) -> None:
    """A coroutine target's raise is counted and captured from its own frame inward."""

    instrument = probed(f"{__name__}.fetch")
    with pytest.raises(LookupError):
        asyncio.run(fetch(3))
    assert instrument.last is not None
    assert [f["function"] for f in instrument.last["frames"]] == [fetch.__qualname__]
    assert instrument.last["frames"][0]["locals"] == {"n": 3}


def test_cancellations_and_exits_are_not_counted(probed: Any) -> None:
    """Only Exception subclasses count: not KeyboardInterrupt, SystemExit or a close."""

    instrument = probed(f"{__name__}.leave")
    with pytest.raises(SystemExit):
        leave(3)
    assert instrument.counts == {}


def test_a_spec_applies_with_the_default_capture_rate(manager: Any) -> None:
    """An exception spec applies through the manager with a capture rate of 1 a second
    (the gate drops no event) and its frames and first."""
    manager.specs["errs"] = {
        "target": TARGET,
        "instrument": {"type": "exception", "name": "errs", "custom": {"frames": 2, "first": 4}},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    manager.apply()
    assert manager.specs["errs"]["applied"][manager.process_id]["err"] is None
    instrument = probes.active_probes[TARGET].instruments[f"{manager.short_id}:errs"]
    assert isinstance(instrument, ExceptionInstrument)
    assert instrument.rate == 1 and instrument.stats.ring is None
    assert (instrument.frames, instrument.first) == (2, 4)


def test_a_removed_spec_retires_its_aggregate(manager: Any) -> None:
    """The instrument of a spec that raised flushes its counts until the spec is removed:
    then its aggregate is retired (taken once more), and nothing keeps the instrument."""
    manager.specs["errs"] = {
        "target": TARGET,
        "instrument": {"type": "exception", "name": "errs"},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    manager.apply()
    outcome(checkout, 1)
    instrument = probes.active_probes[TARGET].instruments[f"{manager.short_id}:errs"]
    aggregate = instrument.aggregate
    gone = weakref.ref(instrument)
    assert aggregate.fleet and id(aggregate) in AGGREGATES._live
    del instrument
    manager.specs.clear()
    manager.apply()
    gc.collect()
    assert gone() is None
    assert id(aggregate) not in AGGREGATES._live


@pytest.mark.parametrize(
    ("instrument", "error"),
    [
        ({"event": "call"}, "its event is return"),
        ({"custom": {"frames": 0}}, "custom.frames must be an integer from 1 to 50"),
        ({"custom": {"first": 101}}, "custom.first must be an integer from 1 to 100"),
        ({"custom": {"first": "3"}}, "custom.first must be an integer"),
    ],
)
def test_bad_exception_specs_are_refused(instrument: dict[str, Any], error: str) -> None:
    """An exception spec fires on return only, with frames and first in range."""
    spec = {
        "target": TARGET,
        "instrument": {"type": "exception", "name": "e", **instrument},
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    with pytest.raises(SpecError, match=error):
        validate_spec(spec)


def test_an_exception_spec_needs_no_value() -> None:
    """The value of an exception spec is an optional condition, True when absent."""
    spec = {
        "target": TARGET,
        "instrument": {"type": "exception", "name": "e"},
        "lastmodified": dt.datetime(2026, 1, 1),
    }
    assert validate_spec(spec)["instrument"]["value"] == "True"
    assert "exception" in diagnose.manager.instrument_classes


def test_another_k_forgets_which_fingerprints_were_full(probed: Any) -> None:
    """A spec edited to capture more per fingerprint lets the process capture again the
    fingerprints it knew to be full; the same K keeps them full."""
    instrument = probed(custom={"first": 1})
    instrument.aggregate.full.add("a" * 16)
    instrument.update(custom={"first": 1})
    assert instrument.aggregate.full == {"a" * 16}
    instrument.update(custom={"first": 5})
    assert instrument.aggregate.full == set() and instrument.first == 5


def connect_to(host: str, api_key: str = SECRET) -> None:
    """Raise with the secret copied into a local that is not named as a secret."""
    url = f"https://user:{api_key}@{host}/v1"
    _dial(url)


def _dial(url: str) -> None:
    raise ConnectionError("unreachable")


def test_a_secret_copied_into_another_local_is_redacted_there_too(probed: Any) -> None:
    """The text of a secret-named local is <redacted> wherever it appears in the capture,
    even in a local of another name, in another frame."""
    instrument = probed(f"{__name__}.connect_to")
    outcome(connect_to, "example.org")
    capture = instrument.last
    assert capture is not None
    assert SECRET not in json.dumps(capture)
    assert capture["frames"][-1]["locals"]["url"] == "https://user:<redacted>@example.org/v1"
