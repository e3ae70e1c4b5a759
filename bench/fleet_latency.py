"""Time publish-to-applied across a fleet of worker processes on one Redis.

Run ``python bench/fleet_latency.py --workers 10 50 100``. For each fleet size it starts a
private redis-server and that many ``tests/support/fleet_worker.py`` processes, publishes a spec
``--rounds`` times (waiting each time until every worker reports it, then ``--pause``
seconds), and prints:

- p50 / p99 / max of publish-to-applied: a worker's status ``at`` minus the spec's
  ``lastmodified`` (set just before the put), and the max of the first publish alone (each
  worker attaches to the target for the first time then, which costs more than a change);
- Redis commands the subscribers sent per apply per process (INFO commandstats deltas of the
  commands only subscribers use: HSET, HDEL, EXPIRE, ZADD, SMEMBERS, MGET, PING);
- resident memory per worker (mean), next to a bare interpreter that imports diagnose.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import diagnose  # noqa: E402, F401  SpecStore.put validates with it: not a cost of round 0
from coordinator._embedded import RedisServer  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402

WORKER = ROOT / "tests" / "support" / "fleet_worker.py"
SUBSCRIBER_COMMANDS = ("hset", "hdel", "expire", "zadd", "smembers", "mget", "ping")
PREFIX = "bench"


def command_count(client: redis.Redis) -> int:
    """Return how many subscriber-only commands the server has run."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in SUBSCRIBER_COMMANDS
    )


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def rss_kb(proc: subprocess.Popen[str]) -> int:
    """Return a process's resident memory in KiB."""
    with open(f"/proc/{proc.pid}/status") as status:
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


def run(size: int, rounds: int, pause: float) -> dict[str, float]:
    """Bench one fleet size and return its figures."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        store = SpecStore(client, PREFIX)
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), "--url", server.url, "--prefix", PREFIX],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(size)
        ]
        try:
            deadline = time.monotonic() + 120
            while len(store.processes()) < size:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(store.processes())} of {size} workers came up")
                time.sleep(0.1)
            time.sleep(1.0)
            latencies: list[float] = []
            first: list[float] = []
            before = command_count(client)
            for n in range(rounds):
                lastmodified = dt.datetime.now(dt.UTC)
                spec = {
                    "target": "fleet_worker.work",
                    "instrument": {"type": "log", "name": "bench", "value": f"result + {n}"},
                    "lifespan": 10,
                    "lastmodified": lastmodified,
                }
                store.put("bench", spec)
                deadline = time.monotonic() + 30
                while True:
                    report = store.status("bench")
                    entries = [
                        r["bench"]
                        for r in report.values()
                        if "bench" in r and r["bench"]["lm"] == lastmodified
                    ]
                    if len(entries) >= size:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"round {n}: {len(entries)} of {size} applied")
                    time.sleep(0.2)
                time.sleep(pause)
                latencies += [(e["at"] - lastmodified).total_seconds() * 1000 for e in entries]
                if n == 0:
                    first = list(latencies)
            commands = command_count(client) - before
            rss = statistics.mean(rss_kb(w) for w in workers)
        finally:
            for worker in workers:
                worker.stdin.close()  # type: ignore[union-attr]
            errors = []
            for worker in workers:
                errors.append(worker.stderr.read())  # type: ignore[union-attr]
                worker.wait(30)
            client.close()
    return {
        "workers": size,
        "samples": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "first_max_ms": max(first),
        "cmds_per_apply": commands / (rounds * size),
        "rss_mb": rss / 1024,
        "stderr_lines": sum(len(e.splitlines()) for e in errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between publishes")
    args = parser.parse_args()
    print(f"baseline interpreter (import diagnose, redis): {baseline_rss_kb() / 1024:.1f} MB RSS")
    header = (
        "workers  samples   p50 ms   p99 ms   max ms  1st max ms  cmds/apply/proc  RSS MB/worker"
        "  stderr"
    )
    print(header)
    for size in args.workers:
        r = run(size, args.rounds, args.pause)
        print(
            f"{r['workers']:7d}  {r['samples']:7d}  {r['p50_ms']:7.1f}  {r['p99_ms']:7.1f}  "
            f"{r['max_ms']:7.1f}  {r['first_max_ms']:10.1f}  {r['cmds_per_apply']:15.2f}  "
            f"{r['rss_mb']:13.1f}  "
            f"{r['stderr_lines']:6d}",
            flush=True,
        )


if __name__ == "__main__":
    main()
