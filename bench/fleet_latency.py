"""CPU per publish of our subscriber against a bare redis-py one, and publish-to-applied.

Run ``python bench/fleet_latency.py --workers 10 50 100`` (``make bench-fleet``). For each
fleet size it starts a private redis-server, that many ``tests/support/fleet_worker.py``
processes (ours: ``diagnose_redis.start()`` and a target function) and as many bare
subscribers beside them, started in turn (``--bare``: redis-py wakes on the message,
msgpack-decodes it, HSETs one status field; what any subscriber must do). After two warm-up
publishes of each kind it publishes a spec ``--rounds`` (30) times of each kind, in blocks of
``--rounds / 2``, the kinds' blocks in turn so that they share the machine's hour:

- ``seen``: an edit to an expression this process applied before;
- ``new``: an edit to an expression never seen before;
- ``same``: the same content again with a new ``lastmodified`` (as ``coordinator publish``
  re-publishing does).

Each publish waits until every subscriber, ours and bare, reports it, then ``--pause``
seconds. The CPU each process's threads ran (``/proc/PID/task/TID/schedstat``, to the
nanosecond) is read just before each publish and once every subscriber has reported it, and
summed per kind: the pauses between publishes, where only heartbeats run, are left out (the
idle figure below is theirs), while the reply of a status write, read before the next
write, falls in the next publish's span. It prints, per kind, the CPU per
process and publish of ours and of the bare subscriber and their ratio (one run, one Redis, the
same publishes), and p50 / p99 / max of publish-to-applied (a status field's ``at`` minus the
spec's ``lastmodified``, set just before the put) for both; then, per size, the max of the first
publish (each worker attaches to the target then), Redis commands our subscribers sent per apply
per process (INFO commandstats deltas of the commands only subscribers use, less the bare ones'
one HSET per publish), resident memory per worker next to a bare interpreter that imports
diagnose, and each side's idle CPU over 10 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
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

import diagnose  # noqa: E402, F401  SpecStore.put validates with it: not a cost of round 0
from coordinator.embedded import RedisServer  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from fleet_scale import cpu_seconds_exact as cpu_seconds  # noqa: E402  (one way to read them)
from fleet_scale import percentile  # noqa: E402

WORKER = ROOT / "tests" / "support" / "fleet_worker.py"
SUBSCRIBER_COMMANDS = ("hset", "hdel", "expire", "zadd", "smembers", "mget", "ping")
PREFIX = "bench"
# In this order: "same" re-publishes what "new" published.
KINDS = ("seen", "new", "same")
WARMUP = 2  # publishes of each kind, not counted
CYCLES = 2  # blocks of each kind
IDLE_SECONDS = 10


def bare_subscriber(url: str, prefix: str, name: str) -> None:
    """Run the bare subscriber: on each event, decode it and HSET one status field."""
    import msgpack

    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}:events")
    key = f"{prefix}:bare:{name}"
    # Stop when the bench closes stdin.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print("ready", name, flush=True)
    for message in pubsub.listen():
        event = msgpack.unpackb(message["data"], timestamp=3)
        spec = event.get("spec") or {}
        lastmodified = spec.get("lastmodified")
        field = {
            "lm": lastmodified.isoformat() if lastmodified else None,
            "err": None,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        client.hset(key, event["id"], json.dumps(field))


def command_count(client: redis.Redis) -> int:
    """Return how many subscriber-only commands the server has run."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in SUBSCRIBER_COMMANDS
    )


def rss_kb(pid: int) -> int:
    """Return a process's resident memory in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def baseline_rss_kb() -> int:
    """Return the resident memory of an interpreter that imports diagnose and redis only."""
    code = (
        "import diagnose, redis, msgpack\n"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def value_of(kind: str, n: int, last: str) -> str:
    """Return the spec's expression for publish n of a kind (last: the one published last)."""
    if kind == "new":
        return f"result + {n}"  # never published before
    if kind == "seen":
        return f"result * {n % 2 + 2}"  # two expressions, both published in the warm-up
    return last


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a subscriber process; return it and the name it reports under."""
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    word, name = proc.stdout.readline().split()
    if word != "ready":
        raise SystemExit(f"{args} did not start")
    return proc, name


class Fleet:
    """Our workers and the bare subscribers beside them, on one Redis."""

    def __init__(self, url: str, size: int) -> None:
        self.ours: list[subprocess.Popen[str]] = []
        self.bare: list[subprocess.Popen[str]] = []
        self.keys: dict[str, list[str]] = {"ours": [], "bare": []}
        for n in range(size):
            proc, name = start(
                [sys.executable, str(WORKER), "--url", url, "--prefix", PREFIX,
                 "--process-id", f"ours-{n}"]
            )  # fmt: skip
            self.ours.append(proc)
            self.keys["ours"].append(f"{PREFIX}:status:{name}")
            proc, name = start([sys.executable, __file__, "--bare", url, PREFIX, f"bare-{n}"])
            self.bare.append(proc)
            self.keys["bare"].append(f"{PREFIX}:bare:{name}")

    def pids(self, side: str) -> list[int]:
        return [p.pid for p in (self.ours if side == "ours" else self.bare)]

    def stop(self) -> int:
        """Stop every process; return how many lines ours wrote to stderr."""
        for proc in self.ours + self.bare:
            assert proc.stdin is not None
            proc.stdin.close()
        lines = 0
        for proc in self.ours:
            assert proc.stderr is not None
            lines += len(proc.stderr.read().splitlines())
        for proc in self.ours + self.bare:
            proc.wait(30)
        return lines


def wait_applied(
    client: redis.Redis, fleet: Fleet, lastmodified: dt.datetime, timeout: float = 60
) -> dict[str, list[float]]:
    """Wait until every subscriber reports this lastmodified; return the publish-to-applied
    times (ms) of each side."""
    wanted = lastmodified.isoformat()
    found: dict[str, dict[str, float]] = {"ours": {}, "bare": {}}
    deadline = time.monotonic() + timeout
    while True:
        pending = [
            (side, key) for side, keys in fleet.keys.items() for key in keys
            if key not in found[side]
        ]  # fmt: skip
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} subscribers did not report {wanted}")
        pipe = client.pipeline(transaction=False)
        for _side, key in pending:
            pipe.hget(key, "bench")
        for (side, key), raw in zip(pending, pipe.execute(), strict=True):
            if raw and wanted.encode() in raw:
                field = json.loads(raw)
                if field["lm"] == wanted and not field["err"]:
                    at = dt.datetime.fromisoformat(field["at"])
                    found[side][key] = (at - lastmodified).total_seconds() * 1000
        time.sleep(0.05)
    return {side: list(times.values()) for side, times in found.items()}


def run(size: int, rounds: int, pause: float) -> dict[str, Any]:
    """Bench one fleet size and return its figures."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        store = SpecStore(client, PREFIX)
        fleet = Fleet(server.url, size)
        stderr_lines = 0
        try:
            deadline = time.monotonic() + 120
            while len(store.processes()) < size:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(store.processes())} of {size} workers came up")
                time.sleep(0.1)
            time.sleep(1.0)
            cpu = {kind: {"ours": 0.0, "bare": 0.0} for kind in KINDS}
            latency: dict[str, dict[str, list[float]]] = {
                k: {"ours": [], "bare": []} for k in KINDS
            }
            first: list[float] = []
            commands = 0
            value, serial = "", 0
            # Each kind's publishes in blocks, the blocks in turn.
            blocks = [(kind, WARMUP, False) for kind in KINDS]
            blocks += [(kind, rounds // CYCLES, True) for _ in range(CYCLES) for kind in KINDS]
            for kind, count, counted in blocks:
                commands_before = command_count(client)
                for _ in range(count):
                    serial += 1
                    value = value_of(kind, serial, value)
                    # Read before lastmodified is set: reading takes the bench a while.
                    before = {side: cpu_seconds(fleet.pids(side)) for side in ("ours", "bare")}
                    spec = {
                        "target": "fleet_worker.work",
                        "instrument": {"type": "log", "name": "bench", "value": value},
                        "lifespan": 600,  # nothing expires in the idle span either
                        "lastmodified": dt.datetime.now(dt.UTC),
                    }
                    store.put("bench", spec)
                    times = wait_applied(client, fleet, spec["lastmodified"])
                    if counted:
                        for side in ("ours", "bare"):
                            cpu[kind][side] += cpu_seconds(fleet.pids(side)) - before[side]
                    if not first:
                        first = times["ours"]
                    if counted:
                        for side in ("ours", "bare"):
                            latency[kind][side] += times[side]
                    time.sleep(pause)
                if counted:
                    commands += command_count(client) - commands_before - 1  # less our INFO
            rounds = rounds // CYCLES * CYCLES
            before = {side: cpu_seconds(fleet.pids(side)) for side in ("ours", "bare")}
            time.sleep(IDLE_SECONDS)
            idle = {
                side: (cpu_seconds(fleet.pids(side)) - before[side]) / IDLE_SECONDS / size * 1000
                for side in ("ours", "bare")
            }
            # The bare subscribers' one HSET per publish is theirs, not ours.
            commands -= size * rounds * len(KINDS)
            rss = statistics.mean(rss_kb(pid) for pid in fleet.pids("ours"))
        finally:
            stderr_lines = fleet.stop()
            client.close()
    per = rounds * size
    return {
        "workers": size,
        "cpu_ms": {k: {s: v / per * 1000 for s, v in sides.items()} for k, sides in cpu.items()},
        "latency": latency,
        "first_max_ms": max(first),
        "idle_ms_per_s": idle,
        "cmds_per_apply": commands / (rounds * len(KINDS) * size),
        "rss_mb": rss / 1024,
        "stderr_lines": stderr_lines,
    }


def report(r: dict[str, Any]) -> None:
    """Print one fleet size's figures."""
    for kind in KINDS:
        ours, bare = r["cpu_ms"][kind]["ours"], r["cpu_ms"][kind]["bare"]
        lat_ours, lat_bare = r["latency"][kind]["ours"], r["latency"][kind]["bare"]
        ratio = ours / bare if bare else math.nan
        print(
            f"{r['workers']:7d}  {kind:5s}  {ours:8.3f}  {bare:8.3f}  {ratio:9.2f}  "
            f"{statistics.median(lat_ours):8.1f} {percentile(lat_ours, 99):8.1f} "
            f"{max(lat_ours):8.1f}  "
            f"{statistics.median(lat_bare):8.1f} {percentile(lat_bare, 99):8.1f} "
            f"{max(lat_bare):8.1f}",
            flush=True,
        )
    print(
        f"{'':7s}  1st publish max {r['first_max_ms']:.1f} ms; {r['cmds_per_apply']:.2f} commands "
        f"per apply per process; {r['rss_mb']:.1f} MB RSS per worker; idle CPU "
        f"{r['idle_ms_per_s']['ours']:.3f} ms/s ours, {r['idle_ms_per_s']['bare']:.3f} bare; "
        f"{r['stderr_lines']} stderr lines",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--rounds", type=int, default=30, help="publishes of each kind")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between publishes")
    parser.add_argument(
        "--bare", nargs=3, metavar=("URL", "PREFIX", "NAME"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare:
        bare_subscriber(*args.bare)
        return
    print(f"baseline interpreter (import diagnose, redis): {baseline_rss_kb() / 1024:.1f} MB RSS")
    print(
        "N of our workers beside N bare redis-py subscribers on one Redis, the same publishes; "
        "CPU in ms per process and publish; publish-to-applied in ms"
    )
    print(
        "workers  kind   CPU ours  CPU bare  ours/bare  "
        "ours p50      p99      max  bare p50      p99      max"
    )
    for size in args.workers:
        report(run(size, args.rounds, args.pause))


if __name__ == "__main__":
    main()
