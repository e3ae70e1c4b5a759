"""hist and incr instruments send DogStatsD lines over UDP to a real socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import diagnose
from diagnose import HistogramInstrument, IncrementInstrument
from probe_targets import shop
from support.probes import ProbeSet


@pytest.fixture
def probes() -> Iterator[ProbeSet]:
    """Probes the test attaches; all stopped and forgotten at its end."""
    with ProbeSet() as ps:
        yield ps


def received(sock: socket.socket, count: int) -> list[str]:
    """Return the next count metric lines that arrive on sock."""
    lines: list[str] = []
    while len(lines) < count:
        data, _addr = sock.recvfrom(65536)
        lines += [line for line in data.decode().split("\n") if line]
    return lines


@pytest.mark.parametrize(
    ("cls", "kind"), [(HistogramInstrument, "h"), (IncrementInstrument, "c")], ids=["hist", "incr"]
)
def test_metric_line_with_tags(
    probes: ProbeSet, statsd: socket.socket, cls: type, kind: str
) -> None:
    """The instrument sends ``name:value|TYPE|#tag:v`` with its custom tags."""
    probes.attach(
        "probe_targets.shop.price",
        "result",
        cls=cls,
        name="shop.price",
        custom={"tags": "{'rate': rate}"},
    )
    assert shop.price(5, rate=3) == 15
    assert received(statsd, 1) == [f"shop.price:15|{kind}|#rate:3"]


@pytest.mark.parametrize("cls", [HistogramInstrument, IncrementInstrument], ids=["hist", "incr"])
def test_metric_line_without_tags(probes: ProbeSet, statsd: socket.socket, cls: type) -> None:
    """Without tags the line is ``name:value|TYPE``, one per call."""
    probes.attach("probe_targets.shop.price", "amount", cls=cls, name="amt")
    shop.price(1)
    shop.price(2)
    lines = received(statsd, 2)
    assert [line.split("|")[0] for line in lines] == ["amt:1", "amt:2"]
    assert all("#" not in line for line in lines)


def test_float_values_are_sent(probes: ProbeSet, statsd: socket.socket) -> None:
    """A float value (elapsed, say) is sent as a number."""
    probes.attach("probe_targets.shop.price", "amount / 4", cls=HistogramInstrument, name="f")
    shop.price(1)
    [line] = received(statsd, 1)
    assert line == "f:0.25|h"


@pytest.mark.parametrize("value", ["'ten'", "[amount]", "True"], ids=["str", "list", "bool"])
def test_non_numeric_value_is_an_instrument_error(
    probes: ProbeSet, statsd: socket.socket, value: str
) -> None:
    """A value that is not a number is an instrument error; the target is unaffected."""
    inst = probes.attach("probe_targets.shop.price", value, cls=HistogramInstrument, name="bad")
    assert shop.price(5) == 10
    assert shop.price(6) == 12
    assert [i for _p, i, _e in probes.mgr.errors] == [inst]
    assert "non-numeric" in (inst.error or "")
    probes.attach("probe_targets.shop.price", "amount", cls=HistogramInstrument, name="ok")
    shop.price(7)
    assert received(statsd, 1) == ["ok:7|h"]


def test_statsd_unreachable_does_not_affect_the_target(probes: ProbeSet) -> None:
    """With nothing listening on the statsd port, the target still returns normally."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    diagnose.configure_statsd("127.0.0.1", port)
    try:
        probes.attach("probe_targets.shop.price", "result", cls=IncrementInstrument, name="x")
        assert [shop.price(n) for n in range(3)] == [0, 2, 4]
    finally:
        diagnose.configure_statsd()
