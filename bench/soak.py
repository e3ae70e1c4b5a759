"""Soak one real worker under a fleet's stream of spec changes; fail if anything keeps growing.

Run ``python bench/soak.py [--minutes 10] [--every 30]`` (``make soak``, ``make soak
SOAK_MINUTES=30``), or ``--quick`` (1 minute, a sample every 5 s) to try it.

A worker lives for weeks and sees thousands of probes come and go, so a leak of a few
hundred bytes per probe is an outage in a month. A test bounds what one kind of probe
keeps in one process (``tests/integration/test_memory.py``); this soak checks the whole worker
as it runs in production, for as long as one is willing to wait:

- A private redis-server (``coordinator.embedded.RedisServer``) and ONE real worker process:
  the example shop worker (``python -m shop.worker``, what ``make demo`` and docker compose
  run), with its real subscriber, pricing carts in a loop (``SHOP_INTERVAL``, 10 ms here) so
  that every probe fires all the time. Its stdout (probe lines) goes to /dev/null or
  ``--worker-log``; its stderr (instrument errors are logged there) to a file in a temporary
  directory, summarised at the end. It runs in a session of its own (Ctrl-C at the terminal
  reaches only this script, which stops it) and gets SIGTERM if this script dies.
- This script is the fleet's publisher: about ``--rate`` (20) changes a second through
  ``SpecStore``, each one of: a new spec with an id never used before, on one of four
  targets, of every event kind (``call``, ``return``, ``end``, and ``return`` with
  ``hotspots`` in its value), of every built-in type (``log``, ``hist``, ``incr``, with or
  without tags), lifespans of minutes or none; an update of a live spec (a new value
  expression, so new code to compile, and a new lastmodified); a removal; a spec living
  3-10 s that expires by itself; and an invalid spec whose error the worker reports in its
  status: a target that does not exist, an unknown instrument type, a value that fails at
  run time (``1 / 0``), and a value that does not compile or that the expression policy
  refuses (those two are refused by ``SpecStore.put``, so they are written to Redis without
  validation, as a foreign or older publisher could). Expiry: the subscriber detaches an
  expired probe by itself within 1 s (README: "Subscribers expire probes by themselves in
  any case"), Redis drops the key by its TTL, and this script does what ``coordinator
  serve`` does for the rest: ``SpecStore.sweep_expired()`` every second (the ids set and
  the removal events) and ``publish_version()`` every 10 s.
- At most ``--max-live`` (20) specs are live at once (a new spec at the bound becomes a
  removal instead), so the worker's steady state is bounded: any growth is a leak, not load.
- Every ``--every`` seconds it samples, and prints as a row of the table (the curve): the
  worker's RSS (``VmRSS``), threads (``Threads``), open descriptors (``/proc/PID/fd``)
  and connections to Redis; its status hash (fields, and how many carry an error); the
  keys under the prefix and the size of the ids set; Redis' connected clients and
  ``used_memory``; and, to show the worker is alive and keeping up, the metrics per second
  its hist/incr probes sent (to a UDP socket of this script) and how many stored specs it
  has not yet reported applied (``behind``).

The verdict: the first third of the run is warm-up (caches fill: the expression compile
cache holds 256 entries, the allocator grows its arenas) and is discarded; over the rest a
least-squares line is fitted to each series and the growth it predicts over that span is
compared with a tolerance per series (the growth fitted over the last half alone is shown
next to it: the tail of a warm-up is flat there, a leak is not):

- RSS: at most ``--rss-tolerance-mb`` (2 MB). The leak of issue 13 (about 440 bytes per
  change, 0.5 MB a minute at this rate) predicts more than 3 MB over the 6.7 minutes after
  warm-up of the default run. The allocators settle for longer than the warm-up: in the
  run quoted in the README, RSS rose 1.4 MB between 210 s and 390 s, then not at all.
- threads, and descriptors other than Redis connections: less than half of one. A single
  extra thread or file that stays, from anywhere in the middle of the span on, predicts
  more than that (a step at 90 % of the span predicts 0.54), while one passing sample at
  the very end of 15 predicts 0.37: these must not grow at all.
- the worker's Redis connections (its clients in ``CLIENT LIST``, by the name the
  subscriber gives them): at most 5, its pub/sub connection and one per thread that may
  use its pool at the same moment (the listener, the reporter, the output stream's and the
  aggregates' flushers). redis-py opens another pool connection the first time more of
  them overlap, which can happen at any time of a run, so this is a bound, not a slope.
  Redis' connected clients: those and this script's one.
- status fields, keys, ids: never above the live-spec bound once warm, plus one second of
  changes in flight (``--rate``: a removal or an expiry the worker has not applied yet)
  and the fixed ones (the ``_process`` field; the ids, version, status and processes keys).
  Thousands of distinct specs pass through a run, so anything kept per spec blows that
  bound in seconds.
- Redis ``used_memory`` less the output stream and the audit trail (each capped by its
  MAXLEN, and filling up to it by design: 20 changes a second reach the audit trail's
  100,000 entries in 80 minutes): at most ``--redis-tolerance-kb`` (256 KB). Twenty live
  specs of a few hundred bytes are a few KB; client buffers come and go.

It prints a verdict line per series and exits 1 if any series keeps growing, 2 if the soak
could not run (the worker died, Redis failed), 130 when interrupted; 0 otherwise. The end,
Ctrl-C (SIGINT), SIGTERM and errors all stop the worker (SIGTERM, then SIGKILL after 10 s)
and Redis. Timings vary on a busy machine; the memory curve is what this is about.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime as dt
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coordinator.embedded import RedisServer, binary_version  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from diagnose_redis.protocol import Keys, encode_event, encode_spec  # noqa: E402

PREFIX = "soak"
PROCESS_ID = "soak-worker"
# The name the subscriber gives its connections (CLIENT SETNAME).
WORKER_CLIENT = Keys(PREFIX).connection_name(PROCESS_ID)
# The subscriber's connections to Redis: its pub/sub one, and one per thread that may use
# its pool at the same moment (the listener, the status reporter, the output stream's
# flusher and the aggregates' flusher).
WORKER_CONNECTIONS = 5
EXAMPLES = ROOT / "examples"

# Targets of the shop worker, and value expressions per event kind. ``{n}`` makes each
# expression distinct (new code to compile). Numeric ones can also go to hist and incr.
TARGETS: dict[str, dict[str, list[tuple[str, bool]]]] = {
    "shop.pricing.total": {
        "call": [("len(items) + {n}", True), ("(sorted(items), discount, {n})", False)],
        "return": [("result + {n}", True), ("(result, elapsed, {n})", False)],
        "end": [("net - gross + {n}", True), ("(gross, net, {n})", False)],
        "hotspots": [("hotspots.worst.time + {n}", True), ("(hotspots.slowest, {n})", False)],
    },
    "shop.pricing.unit_price": {
        "call": [("len(item) + {n}", True), ("(item, {n})", False)],
        "return": [("result * {n}", True), ("(args, result, {n})", False)],
        "end": [("len(item) - {n}", True), ("[item, {n}]", False)],
        "hotspots": [("hotspots.worst.lineno + {n}", True)],
    },
    "shop.pricing.Cart.checkout": {
        "call": [("discount + {n}", True), ("(self.customer, {n})", False)],
        "return": [("result - {n}", True), ("(self.customer, result, {n})", False)],
        "end": [("discount * {n}", True), ("{{'who': self.customer, 'n': {n}}}", False)],
        "hotspots": [("(hotspots.worst.source, {n})", False)],
    },
    "shop.pricing.Cart.add": {
        "call": [("count + {n}", True), ("(item, count, {n})", False)],
        "return": [("elapsed * {n}", True), ("(kwargs, {n})", False)],
        "end": [("self.items[item] + {n}", True), ("(len(self.items), {n})", False)],
        "hotspots": [("hotspots.slowest.time * {n}", True)],
    },
}
INVALID = ("no-target", "unknown-type", "runtime-error", "no-compile", "refused")
# Weights of the changes; a new spec at the live bound becomes a removal.
ACTIONS = {"new": 25, "update": 35, "remove": 22, "short": 10, "invalid": 8}


@dataclasses.dataclass
class Live:
    """A spec this script published and has not removed, and how to make it again."""

    target: str
    itype: str
    event: str
    template: str
    tags: bool
    lifespan: float | None
    raw: bool
    expires: float  # unix seconds; math.inf when it never expires
    kind: str


@dataclasses.dataclass
class Sample:
    """One row of the table."""

    t: float
    changes: int
    live: int
    rss_kb: int
    threads: int
    fds: int
    fields: int
    errors: int
    keys: int
    ids: int
    conns: int
    clients: int
    used_kb: float
    metrics_per_s: float
    behind: int


class Interrupted(BaseException):
    """SIGTERM or SIGINT: stop everything and exit 130."""


class SoakError(Exception):
    """The soak could not go on (the worker died, Redis failed): exit 2."""


# --- the publisher --------------------------------------------------------------------


class Fleet:
    """Publish the stream of changes, keeping at most max_live specs live."""

    def __init__(self, store: SpecStore, max_live: int, rng: random.Random) -> None:
        self.store = store
        self.max_live = max_live
        self.rng = rng
        self.live: dict[str, Live] = {}
        self.serial = 0
        self.counts: Counter[str] = Counter()

    def forget_expired(self) -> None:
        now = time.time()
        for spec_id in [i for i, s in self.live.items() if s.expires <= now]:
            del self.live[spec_id]
            self.counts["expired"] += 1

    def change(self) -> None:
        """Make one change, chosen by ACTIONS and the live bound."""
        self.forget_expired()
        action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        if action in ("new", "short", "invalid") and len(self.live) >= self.max_live:
            action = "remove"
        if action in ("update", "remove") and not self.live:
            action = "new"
        if action == "remove":
            # Short-lived specs are left to expire by themselves.
            removable = sorted(i for i, s in self.live.items() if s.kind != "short")
            spec_id = self.rng.choice(removable or sorted(self.live))
            self.store.remove(spec_id)
            del self.live[spec_id]
        elif action == "update":
            spec_id = self.rng.choice(sorted(self.live))
            self.publish(spec_id, self.live[spec_id])
        else:
            self.serial += 1
            spec_id = f"{action}-{self.serial}"
            self.publish(spec_id, self.make(action))
        self.counts[action] += 1

    def make(self, action: str) -> Live:
        rng = self.rng
        target = rng.choice(sorted(TARGETS))
        event = rng.choice(sorted(TARGETS[target]))
        template, numeric = rng.choice(TARGETS[target][event])
        itype = rng.choice(("log", "log", "hist", "incr")) if numeric else "log"
        lifespan: float | None = rng.choice((None, 1.0, 2.0, 3.0, 5.0))
        raw = False
        kind = event
        if action == "short":
            kind = "short"
            lifespan = rng.uniform(3, 10) / 60
        elif action == "invalid":
            lifespan = rng.uniform(5, 30) / 60
            kind = rng.choice(INVALID)
            if kind == "no-target":
                target = target.rsplit(".", 1)[0] + ".missing_{n}"
            elif kind == "unknown-type":
                itype = "nosuchtype"
            elif kind == "runtime-error":
                template, itype = "1 / 0 + {n}", "log"
            elif kind == "no-compile":
                template, raw = "result +* {n}", True
            else:
                template, raw = "().__class__.__bases__ or {n}", True
        return Live(
            target=target,
            itype=itype,
            event=event,
            template=template,
            tags=rng.random() < 0.3,
            lifespan=lifespan,
            raw=raw,
            expires=math.inf,
            kind=kind,
        )

    def publish(self, spec_id: str, live: Live) -> None:
        """Publish a spec from its recipe, with a new expression and lastmodified."""
        self.serial += 1
        n = self.serial
        event = "return" if live.event == "hotspots" else live.event
        custom = {"tags": f"{{'soak': '{n % 7}'}}"} if live.tags else {}
        lastmodified = dt.datetime.now(dt.UTC)
        spec = {
            "target": live.target.format(n=n),
            "instrument": {
                "type": live.itype,
                "name": f"soak.{spec_id}",
                "value": live.template.format(n=n),
                "event": event,
                "custom": custom,
            },
            "lifespan": live.lifespan,
            "lastmodified": lastmodified,
        }
        if live.raw:
            self.put_unvalidated(spec_id, spec)
        else:
            self.store.put(spec_id, spec)
        if live.lifespan is not None:
            live.expires = lastmodified.timestamp() + live.lifespan * 60
        self.live[spec_id] = live

    def put_unvalidated(self, spec_id: str, spec: dict[str, Any]) -> None:
        """Store and publish a spec as SpecStore.put does, without its validation."""
        store = self.store
        keys = store.keys
        stored = encode_spec(spec_id, spec, store.secret)
        ttl_ms = None if spec["lifespan"] is None else max(1, int(spec["lifespan"] * 60_000))

        def publish(pipe: Any) -> None:
            version = int(pipe.get(keys.version) or 0) + 1
            pipe.multi()
            pipe.set(keys.spec(spec_id), stored, px=ttl_ms)
            pipe.sadd(keys.ids, spec_id)
            pipe.publish(keys.events, encode_event("put", spec_id, version, spec, store.secret))
            pipe.set(keys.version, version)

        store.client.transaction(publish, keys.version)


# --- the worker and its measures --------------------------------------------------------


def _die_with_parent() -> None:
    # In the child before exec: SIGTERM when this script dies, even by SIGKILL (Linux).
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def worker_process(
    url: str, interval: float, statsd_port: int, stdout_path: str, stderr_path: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the shop worker; stop it with SIGTERM (SIGKILL after 10 s) on the way out."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p),
        DIAGNOSE_REDIS_URL=url,
        DIAGNOSE_PREFIX=PREFIX,
        DIAGNOSE_PROCESS_ID=PROCESS_ID,
        DIAGNOSE_STATSD_HOST="127.0.0.1",
        DIAGNOSE_STATSD_PORT=str(statsd_port),
        SHOP_INTERVAL=str(interval),
    )
    env.pop("DIAGNOSE_SECRET", None)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shop.worker"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def proc_status(pid: int) -> tuple[int, int]:
    """Return (VmRSS in KiB, Threads) from /proc/PID/status."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


class Probe:
    """Take the samples: the worker from /proc, the rest from Redis."""

    def __init__(
        self, proc: subprocess.Popen[bytes], store: SpecStore, sink: socket.socket
    ) -> None:
        self.proc = proc
        self.store = store
        self.client: redis.Redis = store.client
        self.sink = sink
        self.metrics = 0
        self.started = time.monotonic()
        self.last_t = 0.0
        self.last_metrics = 0

    def drain(self) -> None:
        """Count the metric datagrams the worker's probes sent since the last call."""
        while True:
            try:
                self.sink.recv(65536)
            except BlockingIOError:
                return
            self.metrics += 1

    def take(self, changes: int, live: int) -> Sample:
        if self.proc.poll() is not None:
            raise SoakError(f"the worker exited with code {self.proc.returncode}")
        t = time.monotonic() - self.started
        pid = self.proc.pid
        rss, threads = proc_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = self.client.hgetall(self.store.keys.status(PROCESS_ID))
        errors = 0
        reported: dict[str, str | None] = {}
        for field, raw in status.items():
            value = json.loads(raw)
            if field != b"_process":
                reported[field.decode()] = value.get("lm")
                errors += bool(value.get("err"))
        # Behind: the stored specs whose field does not yet say their lastmodified (the
        # _process field's version is a heartbeat's, up to 5 s old).
        behind = sum(
            1
            for spec_id, spec in self.store.specs().items()
            if reported.get(spec_id) != spec["lastmodified"].isoformat()
        )
        keys = sum(1 for _ in self.client.scan_iter(match=f"{PREFIX}:*", count=1000))
        ids = int(self.client.scard(self.store.keys.ids))
        conns = sum(1 for c in self.client.client_list() if c.get("name") == WORKER_CLIENT)
        clients = int(self.client.info("clients")["connected_clients"])
        used = int(self.client.info("memory")["used_memory"])
        # Less the two streams, each capped by its MAXLEN (the output stream at about 10,000
        # entries, the audit trail at 100,000): they fill up to their caps by design.
        names = self.store.keys
        for stream in (names.output, names.audit):
            used -= int(self.client.memory_usage(stream) or 0)
        span = t - self.last_t
        rate = (self.metrics - self.last_metrics) / span if span > 0 else 0.0
        self.last_t, self.last_metrics = t, self.metrics
        return Sample(
            t=t,
            changes=changes,
            live=live,
            rss_kb=rss,
            threads=threads,
            fds=fds,
            fields=len(status),
            errors=errors,
            keys=keys,
            ids=ids,
            conns=conns,
            clients=clients,
            used_kb=used / 1024,
            metrics_per_s=rate,
            behind=behind,
        )


HEADER = (
    "  time  changes  live  RSS MB  threads  fds  conns  status  errors  keys  ids  clients"
    "  redis KB  metrics/s  behind"
)


def row(s: Sample) -> str:
    return (
        f"{s.t:5.0f}s  {s.changes:7d}  {s.live:4d}  {s.rss_kb / 1024:6.2f}  {s.threads:7d}"
        f"  {s.fds:3d}  {s.conns:5d}  {s.fields:6d}  {s.errors:6d}  {s.keys:4d}  {s.ids:3d}"
        f"  {s.clients:7d}"
        f"  {s.used_kb:8.1f}  {s.metrics_per_s:9.0f}  {s.behind:6d}"
    )


# --- the verdict --------------------------------------------------------------------------


def fitted_growth(ts: list[float], ys: list[float]) -> float:
    """Return the growth over ts's span predicted by the least-squares line through (ts, ys)."""
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx == 0:
        return 0.0
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / sxx
    return slope * (ts[-1] - ts[0])


@dataclasses.dataclass(frozen=True)
class Series:
    """A column judged at the end: by fitted growth (tolerance) or by a hard bound."""

    name: str
    unit: str
    value: Callable[[Sample], float]
    tolerance: float | None = None
    bound: float | None = None


def verdicts(samples: list[Sample], series: list[Series], warmup: float) -> tuple[list[str], bool]:
    """Return a verdict line per series, and whether every series is flat or bounded."""
    end = samples[-1].t
    kept = [s for s in samples if s.t >= warmup * end]
    if len(kept) < 3:
        return [f"too few samples after warm-up ({len(kept)}): no verdict"], False
    ts = [s.t for s in kept]
    lines = [
        f"after warm-up: {len(kept)} samples from {ts[0]:.0f}s to {ts[-1]:.0f}s "
        f"(the first {warmup:.0%} of the run discarded)"
    ]
    ok = True
    for spec in series:
        ys = [spec.value(s) for s in kept]
        growth = fitted_growth(ts, ys)
        # The growth fitted over the last half alone tells the tail of a warm-up (flat
        # there) from a leak (the same slope there); shown, not judged.
        half = len(ts) // 2
        late = fitted_growth(ts[half:], ys[half:])
        unit = f" {spec.unit}" if spec.unit else ""
        head = (
            f"{spec.name:<13} {ys[0]:g} -> {ys[-1]:g}{unit}, min {min(ys):g}, max {max(ys):g},"
            f" fitted growth {growth:+.2f}{unit} (last half alone {late:+.2f})"
        )
        if spec.bound is not None:
            good = max(ys) <= spec.bound
            word = "bounded" if good else "GROWS"
            lines.append(f"{head}; bound {spec.bound:g}: {word}")
        else:
            assert spec.tolerance is not None
            good = growth <= spec.tolerance
            word = "flat" if good else "GROWS"
            lines.append(f"{head}; tolerance {spec.tolerance:g}: {word}")
        ok = ok and good
    return lines, ok


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    duration = args.minutes * 60
    rng = random.Random(args.seed)
    slack = math.ceil(args.rate)  # one second of changes in flight
    series = [
        Series("RSS", "MB", lambda s: s.rss_kb / 1024, tolerance=args.rss_tolerance_mb),
        Series("threads", "", lambda s: s.threads, tolerance=0.5),
        Series("fds not Redis", "", lambda s: s.fds - s.conns, tolerance=0.5),
        Series("worker conns", "", lambda s: s.conns, bound=WORKER_CONNECTIONS),
        Series("redis clients", "", lambda s: s.clients, bound=WORKER_CONNECTIONS + 1),
        Series("status fields", "", lambda s: s.fields, bound=args.max_live + slack + 1),
        Series("keys", "", lambda s: s.keys, bound=args.max_live + slack + 4),
        Series("ids", "", lambda s: s.ids, bound=args.max_live + slack),
        Series("redis memory", "KB", lambda s: s.used_kb, tolerance=args.redis_tolerance_kb),
    ]
    pause = threading.Event()  # never set: the pacing waits below are intervals, not syncs
    with (
        tempfile.TemporaryDirectory(prefix="diagnose-soak-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        stderr_path = args.worker_stderr or os.path.join(tmp, "worker.stderr")
        server = stack.enter_context(RedisServer())
        client = redis.Redis.from_url(server.url)
        stack.callback(client.close)
        store = SpecStore(client, PREFIX)
        sink = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        proc = stack.enter_context(
            worker_process(
                server.url, args.interval, sink.getsockname()[1], args.worker_log, stderr_path
            )
        )
        print(
            f"soak: {args.minutes:g} min, a sample every {args.every:g}s, ~{args.rate:g} changes/s,"
            f" at most {args.max_live} live specs; redis-server "
            f"{binary_version(server.binary)} on {server.url}; shop worker pid {proc.pid} "
            f"(Python {sys.version.split()[0]}, a cart every {args.interval * 1000:g} ms)",
            flush=True,
        )
        deadline = time.monotonic() + 30
        while PROCESS_ID not in store.processes():
            if proc.poll() is not None:
                raise SoakError(f"the worker exited with code {proc.returncode} at start")
            if time.monotonic() > deadline:
                raise SoakError("the worker did not report to Redis within 30 s")
            pause.wait(0.05)

        fleet = Fleet(store, args.max_live, rng)
        probe = Probe(proc, store, sink)
        samples: list[Sample] = []
        print(HEADER, flush=True)
        start = probe.started
        step = 1.0 / args.rate
        next_change = start
        next_sweep = start + 1.0
        next_version = start + 10.0
        next_sample = start
        end = start + duration
        changes = 0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                fleet.forget_expired()
                sample = probe.take(changes, len(fleet.live))
                samples.append(sample)
                print(row(sample), flush=True)
                next_sample += args.every
                if now >= end:
                    break
            if now >= next_change:
                fleet.change()
                changes += 1
                next_change += step
                if next_change < now - 1.0:  # far behind (a busy machine): do not burst
                    next_change = now
            if now >= next_sweep:
                store.sweep_expired()
                next_sweep = now + 1.0
            if now >= next_version:
                store.publish_version()
                next_version = now + 10.0
            probe.drain()
            wake = min(next_change, next_sweep, next_version, next_sample)
            pause.wait(max(0.0, wake - time.monotonic()))

        counts = fleet.counts
        print(
            f"changes: {changes} in {samples[-1].t:.0f}s ({changes / samples[-1].t:.1f}/s): "
            + ", ".join(f"{k} {counts[k]}" for k in (*ACTIONS, "expired")),
            flush=True,
        )
        lines, ok = verdicts(samples, series, args.warmup)
        for line in lines:
            print(line)
        if not any(sample.conns for sample in samples):
            # It holds its pub/sub connection at least: its name is not the one looked for.
            ok = False
            print(f"verdict: no Redis connection named {WORKER_CLIENT!r} was seen")
        stack.close()  # stop the worker (and Redis) before reading its stderr
        print(f"worker exit code {proc.returncode}; " + stderr_summary(stderr_path))
        if proc.returncode != 0:
            ok = False
            print("verdict: the worker did not stop cleanly")
    print("verdict: " + ("flat: nothing keeps growing" if ok else "SOMETHING KEEPS GROWING"))
    return 0 if ok else 1


def stderr_summary(path: str) -> str:
    """Sum up the worker's stderr: its lines, and the tracebacks logged in them."""
    with open(path, errors="replace") as err:
        lines = err.read().splitlines()
    tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
    return f"{len(lines)} lines on its stderr, {tracebacks} tracebacks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="1 minute, a sample every 5 s")
    parser.add_argument("--rate", type=float, default=20.0, help="spec changes per second")
    parser.add_argument("--max-live", type=int, default=20, help="live specs at most")
    parser.add_argument("--interval", type=float, default=0.01, help="worker: s between carts")
    parser.add_argument("--warmup", type=float, default=1 / 3, help="fraction discarded")
    parser.add_argument("--rss-tolerance-mb", type=float, default=2.0)
    parser.add_argument("--redis-tolerance-kb", type=float, default=256.0)
    parser.add_argument("--worker-log", default=os.devnull, help="the worker's stdout")
    parser.add_argument("--worker-stderr", help="keep the worker's stderr in this file")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.every = 1.0, 5.0
    if args.minutes <= 0 or args.every <= 0 or args.rate <= 0 or args.max_live < 1:
        parser.error("--minutes, --every, --rate and --max-live must be positive")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C must not cut the stopping of the worker and Redis short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        code = run(args)
    except Interrupted as exc:
        print(f"\nsoak: interrupted ({exc}); the worker and Redis are stopped", file=sys.stderr)
        code = 130
    except (SoakError, redis.RedisError, OSError) as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
