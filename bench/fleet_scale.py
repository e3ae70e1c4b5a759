"""What one Redis serves: 1,000 real subscribers, and the command line over 10,000 processes.

Run ``python bench/fleet_scale.py`` (``make bench-scale``; not part of ``make test``). It starts
a private redis-server, then:

1. ``--subscribers`` (1,000) real ``diagnose_redis.Subscriber`` objects, each with its own
   connections and process id, ``--per-process`` (1, at most 50) per OS process; the
   processes are forked, a hundred at a time, from one that imported everything. Subscribers
   sharing one interpreter cannot each patch the same function, so they apply through a
   manager that validates and records specs without patching (each distinct spec validated
   once per interpreter; the real per-process apply cost is in ``bench/fleet_latency.py``).
   Once every subscriber has run its first periodic resync and the machine is quiet again,
   ``--warmup`` (3) publishes warm the fleet up (the first run code for the first time
   everywhere, and copy pages the fork shared; reported apart), then ``--rounds`` (20)
   publishes are measured: p50/p99 publish-to-applied (a subscriber's status ``at`` minus
   the spec's ``lastmodified``), the subscribers' and Redis' CPU per publish, and how busy
   the cores were meanwhile; then the Redis CPU per publish with nobody polling (INFO cpu,
   minus an idle window of the same length: heartbeats and health checks), and
   connections per subscriber. ``FLEET_SCALE_VERBOSE=1`` prints each publish's figures.
2. 10,000 processes written directly (a status hash with ``_process`` and 5 spec fields, and
   a heartbeat each), and the wall time of ``coordinator status --summary``,
   ``coordinator processes`` and ``coordinator processes --by service``, each a process of
   its own, as an operator runs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coordinator.embedded import RedisServer, binary_version  # noqa: E402
from diagnose import validate_spec  # noqa: E402
from diagnose.spec import spec_key  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from diagnose_redis._subscriber.listener import RESYNC_SECONDS  # noqa: E402
from diagnose_redis.protocol import PROCESS_FIELD, encode_status_field  # noqa: E402

COORDINATOR = str(Path(sys.executable).parent / "coordinator")
PREFIX = "scale"
BIG_PREFIX = "scale10k"
KNOWN_TYPES = ("log", "hist", "incr", "snapshot", "test")
# Subscribers started at a time (by one spawner process, which forks their processes).
SPAWN = 100
VERBOSE = bool(os.environ.get("FLEET_SCALE_VERBOSE"))
COMMANDS = (
    ("status --summary", ("status", "--summary")),
    ("status (default)", ("status",)),
    ("status spec-4", ("status", "spec-4")),
    ("processes", ("processes",)),
    ("processes --by service", ("processes", "--by", "service")),
)


# The subscribers of one interpreter validate each distinct spec once, together: they share
# this cache (a real process validates on its own CPU; its cost is in fleet_latency.py). It
# also keeps them from parsing in two threads at once, which CPython 3.11 can fail
# ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905).
_VALIDATED: dict[Any, str | None] = {}
_VALIDATING = threading.Lock()


def validation_error(spec: dict[str, Any]) -> str | None:
    """Validate a spec once per interpreter; return its error text, or None."""
    key = spec_key(spec)
    if key in _VALIDATED:  # no lock once validated: 50 threads would queue for it
        return _VALIDATED[key]
    with _VALIDATING:
        if key not in _VALIDATED:
            try:
                validate_spec(spec, known_types=KNOWN_TYPES)
                _VALIDATED[key] = None
            except Exception as exc:
                _VALIDATED[key] = f"{type(exc).__name__}: {exc}"
        return _VALIDATED[key]


class RecordingManager:
    """Validate specs and record them as applied, patching nothing."""

    def __init__(self, process_id: str) -> None:
        self.specs: dict[str, dict[str, Any]] = {}
        self.process_id = process_id
        self.lock = threading.RLock()

    def apply(self) -> None:
        """Mark each spec applied, or failed with its validation error, in spec["applied"]."""
        with self.lock:
            for spec in self.specs.values():
                applied = spec.setdefault("applied", {})
                entry = {"lm": spec.get("lastmodified"), "err": validation_error(spec)}
                applied[self.process_id] = entry


def run_subscribers(url: str, first: int, count: int, stop: int) -> None:
    """Run count subscribers in this process until the stop pipe closes."""
    from diagnose_redis import Subscriber

    subscribers = []
    for n in range(first, first + count):
        process_id = f"sub-{n:05d}"
        subscriber = Subscriber(
            url,
            process_id=process_id,
            prefix=PREFIX,
            manager=RecordingManager(process_id),
            labels={"service": f"svc-{n % 10}"},
        )
        subscribers.append(subscriber.start())
    os.read(stop, 1)
    for subscriber in subscribers:
        subscriber.stop(timeout=1.0)


def spawner(url: str, first: int, count: int, per_process: int) -> None:
    """Fork the processes that run count subscribers, per_process in each; print their pids,
    and stop them when stdin closes.

    A fleet runs one subscriber per process, each with an interpreter (and a GIL) of its own;
    forked from this one once it has imported everything, a process costs about 9 MB of
    memory of its own, so a thousand of them fit on a development machine.
    """
    import diagnose_redis  # noqa: F401  (imported before the fork, shared by the children)

    # In a fleet, Redis has a host of its own. Here its one thread shares 2 cores with
    # thousands of the subscribers' threads, and the scheduler's fair share per thread would
    # starve it (replies late by seconds, timeouts, reconnections): the subscribers yield.
    os.nice(10)
    gc.collect()
    gc.freeze()
    stop, keep = os.pipe()
    pids = []
    for start in range(first, first + count, per_process):
        pid = os.fork()
        if pid == 0:
            os.close(keep)
            try:
                run_subscribers(url, start, min(per_process, first + count - start), stop)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(stop)
    print("ready", *pids, flush=True)
    sys.stdin.read()
    os.close(keep)
    for pid in pids:
        os.waitpid(pid, 0)


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def redis_cpu(client: redis.Redis) -> float:
    """Return the CPU seconds (user + sys) the server has used."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def spec(n: int) -> dict[str, Any]:
    """Return the bench's spec, changed by n."""
    return {
        "target": "bench.target.work",
        "instrument": {"type": "log", "name": "bench", "value": f"result + {n}"},
        "lifespan": 10,
        "lastmodified": dt.datetime.now(dt.UTC),
    }


def applied_at(
    client: redis.Redis, ids: list[str], lastmodified: dt.datetime, found: dict[str, dt.datetime]
) -> None:
    """Add to found the ``at`` of every subscriber not in it that reports this version of
    the bench spec. Only the missing are read, and a field is parsed only once it names this
    version: the bench's own polling must not take the CPU the subscribers need."""
    pending = [process_id for process_id in ids if process_id not in found]
    pipe = client.pipeline(transaction=False)
    for process_id in pending:
        pipe.hget(f"{PREFIX}:status:{process_id}", "bench")
    wanted = lastmodified.isoformat().encode()
    for process_id, raw in zip(pending, pipe.execute(), strict=True):
        if raw and wanted in raw:
            field = json.loads(raw)
            if field["lm"] == lastmodified.isoformat() and not field["err"]:
                found[process_id] = dt.datetime.fromisoformat(field["at"])


def machine_busy() -> tuple[float, float]:
    """Return the machine's busy and total CPU time so far (clock ticks, all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU seconds (user + system) these processes have used, threads and all."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def cpu_seconds_exact(pids: list[int]) -> float:
    """Return the CPU seconds these processes' live threads have run, to the nanosecond
    (``/proc/PID/task/TID/schedstat``), where utime + stime count 10 ms clock ticks: a
    thread that ended took its time with it, so read threads that live through the span."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended meanwhile
    return total / 1e9


def laggards(client: redis.Redis, ids: list[str]) -> str:
    """Say what these subscribers (those that have not reported the last spec) report about
    themselves."""
    pipe = client.pipeline(transaction=False)
    for process_id in ids:
        pipe.hmget(f"{PREFIX}:status:{process_id}", [PROCESS_FIELD, "bench"])
    lines = []
    version = int(client.get(f"{PREFIX}:version") or 0)
    for process_id, (info, field) in zip(ids, pipe.execute(), strict=True):
        # _process is a heartbeat's (up to 5 s old): how the process is, as of then.
        about = json.loads(info) if info else {}
        keys = ("process_id", "connected", "version", "received", "resyncs", "reconnects")
        lines.append(f"{process_id}: { ({k: about.get(k) for k in keys}) } {field!r:.80}")
    return f"version {version}; behind: " + "; ".join(lines[:10])


def settle(since: float, limit: float = 120.0, quiet: float = 0.3) -> float:
    """Wait until every subscriber has run its first periodic resync (they all started by
    since, a monotonic time) and the machine's cores are less than quiet busy over a second,
    at most limit seconds; return the seconds waited."""
    started = time.monotonic()
    first_resyncs = since + RESYNC_SECONDS * 1.25  # the longest first period (jittered)
    while time.monotonic() - started < limit:
        busy, total = machine_busy()
        time.sleep(1.0)
        busy_after, total_after = machine_busy()
        quiet_now = (busy_after - busy) / max(1, total_after - total) < quiet
        if quiet_now and time.monotonic() >= first_resyncs:
            break
    return time.monotonic() - started


def publish_round(
    client: redis.Redis, store: SpecStore, ids: list[str], n: int
) -> tuple[list[float], float, int]:
    """Publish the bench spec once and wait until every subscriber reports it (at most 60 s);
    return the publish-to-applied times (ms), the share of the machine's cores busy
    meanwhile, and how many did not report it."""
    body = spec(n)
    busy_before, total_before = machine_busy()
    store.put("bench", body)
    deadline = time.monotonic() + 60
    found: dict[str, dt.datetime] = {}
    missing = 0
    while True:
        applied_at(client, ids, body["lastmodified"], found)
        if len(found) == len(ids):
            break
        if time.monotonic() > deadline:
            missing = len(ids) - len(found)
            late = laggards(client, [i for i in ids if i not in found])
            print(f"round {n}: {len(found)} of {len(ids)} reported it within 60 s; {late}",
                  file=sys.stderr, flush=True)  # fmt: skip
            break
        time.sleep(0.2)
    busy, total = machine_busy()
    this = [(at - body["lastmodified"]).total_seconds() * 1000 for at in found.values()]
    if this and VERBOSE:
        slowest = sorted(found, key=found.__getitem__)[-3:]
        line = f"p50 {percentile(this, 50):.0f} p99 {percentile(this, 99):.0f} max {max(this):.0f}"
        print(f"round {n}: {line} ms; slowest {slowest}", file=sys.stderr, flush=True)
    return this, (busy - busy_before) / max(1, total - total_before), missing


def stop_spawners(children: list[subprocess.Popen[str]]) -> None:
    """Close the spawners' stdin (they stop their subscribers) and wait for them."""
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in children:
        proc.wait(60)


def wait_heartbeats(client: redis.Redis, store: SpecStore, count: int) -> None:
    """Wait until count processes have heartbeat (at most 120 s)."""
    deadline = time.monotonic() + 120
    while client.zcard(store.keys.processes) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the subscribers did not all heartbeat")
        time.sleep(0.1)


def fleet_phase(
    server: RedisServer, size: int, per_process: int, rounds: int, warmup: int
) -> dict[str, Any]:
    """Start the subscribers, publish, and measure."""
    client = redis.Redis.from_url(server.url, socket_timeout=60)
    store = SpecStore(client, PREFIX)
    clients_before = int(client.info("clients")["connected_clients"])
    started = time.monotonic()
    children: list[subprocess.Popen[str]] = []
    pids: list[int] = []
    try:
        # SPAWN subscribers at a time, each batch once the previous one's all heartbeat: a
        # thousand connecting at once is a storm of timeouts and retries on 2 cores.
        for first in range(0, size, SPAWN):
            count = min(SPAWN, size - first)
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", server.url, str(first), str(count),
                 str(per_process)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            children.append(proc)
            assert proc.stdout is not None
            word, *forked = proc.stdout.readline().split()
            assert word == "ready"
            pids += [int(pid) for pid in forked]
            wait_heartbeats(client, store, first + count)
        ids = [f"sub-{n:05d}" for n in range(size)]
        startup = time.monotonic() - started
        connections = int(client.info("clients")["connected_clients"]) - clients_before
        settled = settle(since=time.monotonic())
        # The first publishes after a start run code for the first time in every process
        # (and copy the pages a fork shared): reported apart, as a fleet that has run for a
        # while does not pay that.
        warmups: list[float] = []
        missing = 0
        for n in range(-warmup, 0):
            this, _, lost = publish_round(client, store, ids, n)
            warmups.append(percentile(this, 99) if this else math.nan)
            missing += lost
            time.sleep(0.5)
        latencies: list[float] = []
        busy_shares: list[float] = []
        subscribers_cpu = cpu_seconds(pids)
        redis_before = redis_cpu(client)
        for n in range(rounds):
            this, busy_share, lost = publish_round(client, store, ids, n)
            latencies += this
            busy_shares.append(busy_share)
            missing += lost
            time.sleep(0.5)
        subscribers_cpu = cpu_seconds(pids) - subscribers_cpu
        rounds_redis_cpu = redis_cpu(client) - redis_before
        # Redis CPU: the same window idle, then with one publish a second and nobody polling.
        window = 10
        cpu, fleet_cpu = redis_cpu(client), cpu_seconds(pids)
        time.sleep(window)
        idle, fleet_idle = redis_cpu(client) - cpu, cpu_seconds(pids) - fleet_cpu
        cpu = redis_cpu(client)
        last = spec(0)
        for n in range(window):
            last = spec(rounds + n)
            store.put("bench", last)
            time.sleep(1.0)
        busy = redis_cpu(client) - cpu

    finally:
        stop_spawners(children)
        client.close()
    return {
        "subscribers": size,
        "os_processes": len(pids),
        "startup_s": startup,
        "connections_per_subscriber": connections / size,
        "samples": len(latencies),
        "missing": missing,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "deciles_ms": [percentile(latencies, q) for q in range(10, 100, 10)],
        "idle_cpu_ms_per_s": idle / window * 1000,
        "subscriber_idle_ms_per_s": fleet_idle / window / size * 1000,
        "cpu_ms_per_publish": (busy - idle) / window * 1000,
        "subscriber_cpu_ms": subscribers_cpu / rounds / size * 1000,
        "busy": statistics.median(busy_shares),
        "settled_s": settled,
        "warmup_p99_ms": warmups,
        "rounds_redis_cpu_ms": rounds_redis_cpu / rounds * 1000,
    }


def write_big_fleet(client: redis.Redis, processes: int, specs: int) -> None:
    """Store specs and write every process's status hash and heartbeat directly."""
    store = SpecStore(client, BIG_PREFIX)
    stored = {}
    for n in range(specs):
        body = spec(n)
        if n == specs - 1:
            body["target"] = "bench.target.missing"
        store.put(f"spec-{n}", body)
        stored[f"spec-{n}"] = store.get(f"spec-{n}")
    now = time.time()
    at = dt.datetime.now(dt.UTC)
    pipe = client.pipeline(transaction=False)
    for n in range(processes):
        process_id = f"host-{n // 8:04d}:{1000 + n % 8}"
        info = {
            "host": f"host-{n // 8:04d}",
            "pid": 1000 + n % 8,
            "process_id": process_id,
            "version": specs,
            "labels": {"service": f"svc-{n % 10}", "process": process_id},
        }
        fields = {PROCESS_FIELD: json.dumps(info)}
        for spec_id, body in stored.items():
            assert body is not None
            error = "TargetNotFound: bench.target has no attribute 'missing'"
            err = error if body["target"].endswith("missing") else None
            fields[spec_id] = encode_status_field(body["lastmodified"], err, at)
        key = f"{BIG_PREFIX}:status:{process_id}"
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, 600)
        pipe.zadd(f"{BIG_PREFIX}:processes", {process_id: now})
        if n % 500 == 499:
            pipe.execute()
    pipe.execute()


def heartbeat_all(client: redis.Redis) -> None:
    """Mark every process of the big fleet as having just heartbeat."""
    key = f"{BIG_PREFIX}:processes"
    now = time.time()
    members = client.zrange(key, 0, -1)
    client.zadd(key, dict.fromkeys(members, now))


def time_command(
    client: redis.Redis, url: str, *args: str, repeat: int = 3
) -> tuple[float, float, int]:
    """Return the best wall and CPU time of `coordinator ARGS` run as a process, and its
    exit code; every process heartbeats just before each run."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": BIG_PREFIX}
    best, best_cpu, code = float("inf"), float("inf"), 0
    for _ in range(repeat):
        heartbeat_all(client)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [COORDINATOR, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best, best_cpu = min(best, wall), min(best_cpu, cpu)
        code = done.returncode
    return best, best_cpu, code


def big_phase(server: RedisServer, processes: int, specs: int) -> dict[str, Any]:
    """Write the big fleet and time the commands that read it."""
    client = redis.Redis.from_url(server.url)
    write_big_fleet(client, processes, specs)
    memory = int(client.info("memory")["used_memory"])
    results: dict[str, Any] = {"count": processes, "specs": specs, "memory_mb": memory / 2**20}
    results["interpreter"] = time_command(client, server.url, "--version")
    for name, args in COMMANDS:
        results[name] = time_command(client, server.url, *args)
    client.close()
    return results


def report_fleet(f: dict[str, Any]) -> None:
    """Print the figures of the fleet phase."""
    print(
        f"{f['subscribers']} subscribers in {f['os_processes']} OS processes "
        f"(up in {f['startup_s']:.1f}s): {f['connections_per_subscriber']:.2f} connections "
        f"per subscriber\n"
        f"publish-to-applied over {f['samples']} applies: p50 {f['p50_ms']:.0f} ms, "
        f"p99 {f['p99_ms']:.0f} ms, max {f['max_ms']:.0f} ms (deciles "
        f"{', '.join(f'{v:.0f}' for v in f['deciles_ms'])} ms); "
        f"{f['missing']} not reported within 60 s; not counted: the first "
        f"{len(f['warmup_p99_ms'])} publishes, once the fleet had settled ({f['settled_s']:.0f} s "
        f"after its start), p99 {', '.join(f'{v:.0f}' for v in f['warmup_p99_ms'])} ms\n"
        f"Redis CPU: {f['idle_cpu_ms_per_s']:.0f} ms/s idle (heartbeats, health checks); "
        f"{f['cpu_ms_per_publish']:.0f} ms per publish (fan-out and status writes)\n"
        f"while measuring (with the bench's polling, idle time included): "
        f"{f['subscriber_cpu_ms']:.2f} ms of subscriber CPU per subscriber and publish (idle, a "
        f"subscriber uses {f['subscriber_idle_ms_per_s']:.3f} ms/s), "
        f"{f['rounds_redis_cpu_ms']:.0f} ms of Redis CPU per publish; the machine's cores were "
        f"{f['busy']:.0%} busy from a publish until every subscriber reported it (median)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument(
        "--per-process",
        type=int,
        default=1,
        choices=range(1, 51),
        metavar="1-50",
        help="subscribers per OS process (default 1, as in a fleet)",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="publishes not counted")
    parser.add_argument("--processes", type=int, default=10_000)
    parser.add_argument("--specs", type=int, default=5)
    parser.add_argument(
        "--child", nargs=4, metavar=("URL", "FIRST", "COUNT", "PER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        url, first, count, per = args.child
        spawner(url, int(first), int(count), int(per))
        return
    with RedisServer() as server:
        # Redis keeps the priority it started with; the bench's own polling (and the commands
        # it times, on a machine idle by then) yields like the subscribers: the measuring
        # must not take the CPU the measured need.
        os.nice(10)
        load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
        print(
            f"redis-server {binary_version(server.binary)}, {os.cpu_count()} CPUs "
            f"(load average at start: {load}); {args.per_process} subscriber(s) per OS "
            "process, each process forked, at nice 10 (so that Redis is not starved, as it "
            "would not be on a host of its own), as is the bench's polling; subscribers apply "
            "through a manager that validates and records specs without patching, each "
            "distinct spec once per interpreter (the real apply cost: bench/fleet_latency.py)",
            flush=True,
        )
        if args.subscribers:
            report_fleet(
                fleet_phase(server, args.subscribers, args.per_process, args.rounds, args.warmup)
            )
        b = big_phase(server, args.processes, args.specs)
        load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
        wall, cpu, _ = b["interpreter"]
        print(
            f"{b['count']} processes x {b['specs']} specs written directly "
            f"({b['memory_mb']:.0f} MB in Redis); each command as a process of its own, "
            f"best of 3 (`coordinator --version` alone: {wall:.2f}s wall, {cpu:.2f}s CPU; "
            f"load average {load}):"
        )
        for name, _ in COMMANDS:
            wall, cpu, code = b[name]
            print(f"  coordinator {name:24s} {wall:5.2f}s wall  {cpu:5.2f}s CPU  (exit {code})")


if __name__ == "__main__":
    main()
