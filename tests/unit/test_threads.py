"""Probes come and go while other threads call the target: nothing breaks, nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import diagnose
from diagnose import ProbeTestInstrument
from diagnose.probes import active_probes
from probe_targets import shop
from support.probes import ProbeSet

THREADS = 8
ROUNDS = 60


@pytest.fixture
def probes() -> Iterator[ProbeSet]:
    """Probes the test attaches; all stopped and forgotten at its end."""
    with ProbeSet() as ps:
        yield ps


def test_churn_while_threads_call(probes: ProbeSet) -> None:
    """8 threads call a target while probes start, stop and change: every call is right,
    and an instrument attached throughout records every one of them."""
    original = shop.price.__code__
    # Kept throughout, on a second name for the same function (they share its patch).
    steady = probes.attach("probe_targets.elsewhere.price", "(amount, discount, result)")
    stop = threading.Event()
    started = threading.Barrier(THREADS + 1, timeout=10)
    errors: list[BaseException] = []
    calls = [0] * THREADS

    def worker(n: int) -> None:
        try:
            started.wait()
            i = 0
            while not stop.is_set() or i < 50:
                amount, discount = n * 1000 + i, i % 7
                got = shop.price(amount, discount=discount)
                if got != amount * 2 - discount:
                    raise AssertionError(f"price({amount}, discount={discount}) gave {got}")
                i += 1
            calls[n] = i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(THREADS)]
    for t in threads:
        t.start()
    started.wait()
    try:
        churned: list[ProbeTestInstrument] = []
        for r in range(ROUNDS):
            probe = diagnose.probes.attach_to("probe_targets.shop.price")
            event = ("call", "return", "end")[r % 3]
            value = "subtotal" if event == "end" else "amount"
            inst = ProbeTestInstrument(f"c{r}", value, event, mgr=probes.mgr)
            probe.instruments[inst.name] = inst
            probe.start()
            extra = ProbeTestInstrument(f"x{r}", "discount", "return", mgr=probes.mgr)
            probe.instruments[extra.name] = extra
            del probe.instruments[inst.name]
            churned += [inst, extra]
            if r % 2:
                probe.stop()
                del active_probes["probe_targets.shop.price"]
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert probes.mgr.errors == []
    assert all(c >= 50 for c in calls)
    assert len(steady.log) == sum(calls)
    assert all(result == amount * 2 - discount for amount, discount, result in steady.results)
    assert sorted(a for a, _d, _r in steady.results) == sorted(
        n * 1000 + i for n in range(THREADS) for i in range(calls[n])
    )
    probes.close()
    assert shop.price.__code__ is original


def test_probe_changes_while_a_call_is_inside(probes: ProbeSet) -> None:
    """A call inside the target while its instruments change finishes normally, and fires
    the instruments it started with; later calls fire the new ones."""
    entered, go = threading.Event(), threading.Event()
    results: list[int] = []
    first = probes.attach("probe_targets.shop.add_when_told", "result", name="first")
    t = threading.Thread(target=lambda: results.append(shop.add_when_told(entered, go, 1)))
    t.start()
    try:
        assert entered.wait(10)
        probe = active_probes["probe_targets.shop.add_when_told"]
        second = ProbeTestInstrument("second", "x", mgr=probes.mgr)
        probe.instruments["second"] = second
        del probe.instruments["first"]
    finally:
        go.set()
        t.join(10)
    assert results == [2]
    assert shop.add_when_told(threading.Event(), go, 5) == 6
    assert first.results == [2]
    assert second.results == [5]
    probe.stop()
    entered.clear()
    go.clear()
    t = threading.Thread(target=lambda: results.append(shop.add_when_told(entered, go, 7)))
    t.start()
    assert entered.wait(10)
    probe.start()
    go.set()
    t.join(10)
    assert results == [2, 8]
