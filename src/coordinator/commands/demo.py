"""`coordinator demo`: the newcomer's tour, on a private Redis with real worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from coordinator._context import Settings, redact
from coordinator._errors import Interrupted, OperationFailed
from coordinator.commands import inspect as inspecting
from coordinator.commands.demo_processes import (
    Children,
    Relay,
    child_env,
    examples_dir,
    raise_on_sigterm,
    wait_until,
)
from coordinator.commands.stats import read_report, show_stats
from coordinator.commands.tail import Entry, Follower, Lines, OutputFilter
from coordinator.embedded import RedisServer, binary_version, find_redis_server
from coordinator.fleet.specs import spec_from_flags
from coordinator.fleet.wait import wait_for_spec
from coordinator.view.results import print_results
from diagnose.clock import to_utc, utcnow
from diagnose.spec import DEFAULT_FIRST

__all__ = ("run_demo",)

SPEC_ID = "cart-total"
TARGET = "shop.pricing.total"
VALUE = "{'items': sum(items.values()), 'discount': discount, 'total': result}"
SNAPSHOT_ID = "cart-snapshot"
SNAPSHOT_TARGET = "shop.pricing.Cart.checkout"
LINE_ID = "cart-line"
LINE_MARK = "net = gross"
LINE_VALUE = "{'gross': round(gross, 2), 'discount': discount}"
EXCEPTION_ID = "pay-errors"
EXCEPTION_TARGET = "shop.pricing.pay"
STATS_ID = "checkout-time"
STATS_VALUE = "elapsed * 1000"
# Checkouts each worker makes before the demo shows their statistics.
STATS_CALLS = 4
# How long each `coordinator tail -f` of the tour shows the stream, at least.
FOLLOW_SECONDS = 3.0
WORKER_INTERVAL = "0.8"


def _removals(relay: Relay) -> set[str]:
    """Return the ids whose removal serve said it published, as relayed so far."""
    marker = "published removal of "
    ids: set[str] = set()
    with relay.lock:
        for _, _, line in relay.lines:
            if marker in line:
                ids.update(line.split(marker, 1)[1].strip().split(", "))
    return ids


def run_demo(settings: Settings, *, workers: int = 3, lifespan: float = 0.25) -> None:
    """Run the tour; stop every process it started, also on errors and Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, raise_on_sigterm)
    relay = Relay()
    try:
        with contextlib.ExitStack() as stack:
            if settings.redis_url is None:
                server = RedisServer(find_redis_server(prefer_path=False))
                stack.callback(server.cleanup)
                server.start()
                settings = dataclasses.replace(settings, redis_url=server.url, _client=None)
                relay.say(
                    f"Started a private redis-server {binary_version(server.binary)} "
                    f"on {server.url}",
                    bold=True,
                )
            else:
                # Keep the demo's keys apart from a real fleet's on a shared Redis.
                settings = dataclasses.replace(
                    settings, prefix=f"{settings.prefix}-demo", _client=None
                )
                # An unreachable Redis fails here, as every command does (exit 4), before
                # the demo starts anything.
                stack.callback(settings.close)
                settings.client().ping()
                relay.say(f"Using Redis at {redact(settings.url)}, prefix {settings.prefix!r}")
            stack.callback(settings.close)
            children = Children(relay)
            stack.callback(children.stop)
            _tour(settings, relay, children, workers, lifespan)
    except KeyboardInterrupt as exc:
        raise Interrupted.by(exc, "the demo stopped every process it started")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tour(
    settings: Settings, relay: Relay, children: Children, workers: int, lifespan: float
) -> None:
    started = time.monotonic()
    store: Any = settings.store()
    examples = examples_dir()
    pythonpath = os.pathsep.join(filter(None, [str(examples), os.environ.get("PYTHONPATH")]))
    relay.say(
        f"\n1. Starting `coordinator serve` and {workers} shop workers (examples/shop)", bold=True
    )
    serve_argv = [
        sys.executable,
        "-m",
        "coordinator",
        "serve",
        "--sweep-interval",
        "0.5",
        "--prune-interval",
        "2",
        "--max-age",
        "6",
    ]
    children.start("serve", serve_argv, child_env(settings, {}))
    wait_until(
        lambda: relay.count(lambda label, line: label == "serve" and "serving" in line) > 0,
        20,
        "coordinator serve to start",
        children,
    )
    for n in range(1, workers + 1):
        env = child_env(
            settings,
            {
                "DIAGNOSE_PROCESS_ID": f"worker-{n}",
                # Their probe output is read from the output stream, as on a real fleet.
                "DIAGNOSE_OUTPUT": "redis",
                "PYTHONPATH": pythonpath,
                "SHOP_INTERVAL": WORKER_INTERVAL,
            },
        )
        children.start(f"worker-{n}", [sys.executable, "-m", "shop.worker"], env)
    wait_until(lambda: len(store.processes()) >= workers, 30, "the workers' heartbeats", children)
    with relay.held():
        relay.say("\n$ coordinator processes", bold=True)
        inspecting.processes(settings, max_age=None, as_json=False)

    relay.say(f"\n2. Publishing a log probe on {TARGET} that lives {lifespan * 60:g}s", bold=True)
    lifespans = {}
    lifespans[SPEC_ID] = _publish(
        settings,
        relay,
        f'--target {TARGET} --value "{VALUE}" --lifespan {lifespan:g}',
        SPEC_ID,
        dict(target=TARGET, itype="log", value=VALUE, lifespan=lifespan),
    )

    relay.say("\n3. Reading the probe's output from the fleet's output stream", bold=True)
    with _StreamView(settings, relay, [SPEC_ID]) as view:
        wait_until(
            lambda: view.processes(SPEC_ID) >= workers and view.age() >= FOLLOW_SECONDS,
            15,
            "probe output in the stream",
            children,
        )

    relay.say("\n4. A snapshot of each checkout's arguments, and a probe on one line", bold=True)
    lifespans[SNAPSHOT_ID] = _publish(
        settings,
        relay,
        f"--target {SNAPSHOT_TARGET} --type snapshot --event call --lifespan {lifespan:g}",
        SNAPSHOT_ID,
        dict(target=SNAPSHOT_TARGET, itype="snapshot", value=None, event="call", lifespan=lifespan),
    )
    line = _line_of(examples / "shop" / "pricing.py", LINE_MARK)
    lifespans[LINE_ID] = _publish(
        settings,
        relay,
        f'--target {TARGET} --line {line} --value "{LINE_VALUE}" --rate 1 --lifespan {lifespan:g}',
        LINE_ID,
        dict(target=TARGET, itype="log", value=LINE_VALUE, line=line, rate=1, lifespan=lifespan),
    )
    with _StreamView(settings, relay, [SNAPSHOT_ID, LINE_ID]) as view:
        wait_until(
            lambda: (
                view.processes(SNAPSHOT_ID) >= workers
                and view.processes(LINE_ID) >= workers
                and view.age() >= FOLLOW_SECONDS
            ),
            15,
            "snapshots and line probe output in the stream",
            children,
        )
    with relay.held():
        relay.say("\n$ coordinator list", bold=True)
        inspecting.list_specs(settings, as_json=False)
        relay.say("\n$ coordinator status", bold=True)
        inspecting.status(settings, None, as_json=False)

    relay.say(
        f"\n5. Exception replay on {EXCEPTION_TARGET}: every failed payment counted, the "
        f"first {DEFAULT_FIRST} of each kind captured with their locals",
        bold=True,
    )
    lifespans[EXCEPTION_ID] = _publish(
        settings,
        relay,
        f"--target {EXCEPTION_TARGET} --type exception --lifespan {lifespan:g}",
        EXCEPTION_ID,
        dict(target=EXCEPTION_TARGET, itype="exception", value=None, lifespan=lifespan),
    )
    with _StreamView(settings, relay, [EXCEPTION_ID]) as view:
        wait_until(
            lambda: view.count(EXCEPTION_ID) >= 1 and view.age() >= FOLLOW_SECONDS,
            20,
            "an exception capture in the stream",
            children,
        )
    _show_exceptions(settings, relay, view)

    relay.say("\n6. Fleet statistics: how long checkouts take, p50 and p99", bold=True)
    lifespans[STATS_ID] = _publish(
        settings,
        relay,
        f'--target {SNAPSHOT_TARGET} --type stats --value "{STATS_VALUE}" --lifespan {lifespan:g}',
        STATS_ID,
        dict(target=SNAPSHOT_TARGET, itype="stats", value=STATS_VALUE, lifespan=lifespan),
    )
    wait_until(
        lambda: _stats_count(settings) >= STATS_CALLS * workers,
        30,
        "the workers' statistics in Redis",
        children,
    )
    with relay.held():
        relay.say(f"\n$ coordinator stats {STATS_ID}", bold=True)
        show_stats(settings, STATS_ID)
        relay.say(
            "Milliseconds per checkout: each worker adds its calls up in memory and merges "
            "them into Redis once a second; the quantiles are within 1 % of the fleet's."
        )

    expires = max(lifespans.values())
    relay.say("\n7. Waiting for the lifespans to run out", bold=True)
    wait_until(lambda: utcnow() >= expires, lifespan * 60 + 15, "the lifespans", children)
    relay.say(f"The last lifespan ran out at {expires:%H:%M:%S} UTC", bold=True)
    detached = lambda label, line: "probe detached" in line  # noqa: E731
    wait_until(lambda: relay.count(detached) >= 3 * workers, 15, "the workers to detach", children)
    wait_until(
        lambda: not set(lifespans) & set(store.specs()), 10, "serve to remove the specs", children
    )
    # serve tells each removal it publishes (several expiries of one sweep on one line).
    wait_until(
        lambda: set(lifespans) <= _removals(relay), 10, "serve to publish the removals", children
    )
    quiet_from = time.time() + 0.5
    time.sleep(2.5)
    after = _entries_since(settings, quiet_from)
    with relay.held():
        relay.say("\n$ coordinator list", bold=True)
        inspecting.list_specs(settings, as_json=False)
        relay.say(
            f"\nOutput stream entries in the last 2s: {after}. Every worker detached: "
            f"{TARGET}, {SNAPSHOT_TARGET} and {EXCEPTION_TARGET} are the original functions "
            "again.",
            bold=True,
        )
    if after:
        raise OperationFailed(f"demo: {after} output entries after the workers detached")
    left = _stats_keys(settings)
    relay.say(f"Keys of {STATS_ID}'s statistics left in Redis: {left}.", bold=True)
    if left:
        raise OperationFailed(f"demo: {left} keys of statistics left after the removal")
    relay.say("\n8. Stopping the workers, the service and Redis", bold=True)
    children.stop()
    relay.say(f"Demo finished in {time.monotonic() - started:.0f}s.", bold=True)


def _publish(
    settings: Settings, relay: Relay, flags: str, spec_id: str, fields: dict[str, Any]
) -> _dt.datetime:
    """Publish one spec as `coordinator publish ID FLAGS --wait` would; return its expiry."""
    store: Any = settings.store()
    relay.say(f"$ coordinator publish {spec_id} {flags} --wait", bold=True)
    fields = dict(fields)
    lifespan = fields.pop("lifespan")
    spec = spec_from_flags(
        spec_id,
        name=spec_id,
        event=fields.pop("event", "line" if "line" in fields else "return"),
        lifespan=lifespan,
        custom={},
        **fields,
    )
    store.put(spec_id, {k: v for k, v in spec.items() if k != "applied"})
    stored = store.get(spec_id) or spec
    live = sorted(store.processes())
    results, in_time = wait_for_spec(store, spec_id, stored["lastmodified"], live, 20)
    with relay.held():
        print_results({r.process: {spec_id: r} for r in results}, lambda _p: True)
    if not in_time:
        raise OperationFailed(f"demo: the workers did not apply {spec_id} within 20s")
    return to_utc(stored["lastmodified"]) + _dt.timedelta(minutes=lifespan)


def _show_exceptions(settings: Settings, relay: Relay, view: _StreamView) -> None:
    """Show `coordinator exceptions` of the exception spec, then the first capture seen."""
    from coordinator.commands.exceptions import exceptions as show_exceptions

    with relay.held():
        relay.say(f"\n$ coordinator exceptions --wide {EXCEPTION_ID}", bold=True)
        show_exceptions(settings, EXCEPTION_ID, wide=True)
        captured = [e for e in view.entries if e["spec"] == EXCEPTION_ID]
        fingerprint = json.loads(captured[0]["value"]).get("fingerprint")
        relay.say(f"\n$ coordinator exceptions --wide {EXCEPTION_ID} {fingerprint}", bold=True)
        show_exceptions(settings, EXCEPTION_ID, fingerprint, wide=True)


def _line_of(path: Path, mark: str) -> int:
    """Return the number of the first line of a file that holds mark."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if mark in text:
            return number
    raise OperationFailed(f"demo: no line of {path} holds {mark!r}")


def _stats_count(settings: Settings) -> int:
    """Return how many checkouts the fleet's statistics of STATS_ID count so far."""
    report = read_report(settings, STATS_ID)
    return sum(getattr(row, "count", 0) for row in report.fleet.values())


def _stats_keys(settings: Settings) -> int:
    """Count the keys of STATS_ID's statistics in Redis."""
    client = settings.client()
    prefix = settings.store().keys.prefix
    return sum(
        1
        for kind in ("agg", "stats")
        for _ in client.scan_iter(match=f"{prefix}:{kind}:{STATS_ID}*")
    )


def _entries_since(settings: Settings, since: float) -> int:
    """Count the output stream's entries added since a unix time."""
    key = settings.store().keys.output
    found: Any = settings.client().xrange(key, str(int(since * 1000)), "+")
    return len(found)


class _StreamView:
    """`coordinator tail -f ID...` inside the demo: a thread printing the stream's new
    entries for some specs, through the relay, until the with-block ends (its ^C)."""

    def __init__(self, settings: Settings, relay: Relay, spec_ids: list[str]) -> None:
        self.relay = relay
        self.spec_ids = spec_ids
        self.client = settings.client()
        self.key = settings.store().keys.output
        self.entries: list[Entry] = []
        # Whole lines (--wide): the values are what the tour is about.
        self.lines = Lines(None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-tail", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> _StreamView:
        newest: Any = self.client.xrevrange(self.key, count=1)
        after = newest[0][0].decode() if newest else "0-0"
        self.follower = Follower(
            self.client, self.key, after, OutputFilter(frozenset(self.spec_ids)), block=0.2
        )
        self.relay.say(f"\n$ coordinator tail -f --wide {' '.join(self.spec_ids)}", bold=True)
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.relay.say("^C")

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in self.follower.poll():
                with self.relay.lock:
                    self.entries.append(entry)
                    click.echo(self.lines.format(entry))

    def count(self, spec_id: str) -> int:
        """Return how many entries of spec_id have been shown so far."""
        with self.relay.lock:
            return sum(1 for e in self.entries if e["spec"] == spec_id)

    def processes(self, spec_id: str) -> int:
        """Return how many processes have shown output of spec_id so far."""
        with self.relay.lock:
            return len({e["process"] for e in self.entries if e["spec"] == spec_id})

    def age(self) -> float:
        """Return the seconds since following began."""
        return time.monotonic() - self._started
