"""Compare two versions of the subscriber in one fleet, under the same conditions.

Run ``python bench/fleet_ab.py --against PATH``, PATH a checkout of another commit (a
``git worktree``, say) that has ``bench/fleet_scale.py``. On a machine whose speed varies
from hour to hour, two runs of ``make bench-scale`` an hour apart compare the hours as much
as the code. This runs ``--subscribers`` (1,000) over one private Redis, every other hundred
from PATH's code (A) and the others from this checkout's (B), each in its own forked process
as ``bench/fleet_scale.py`` starts them, and publishes ``--rounds`` (20) times after 3
warm-up publishes. It reports for each half the CPU per subscriber and publish (from
``/proc``), the idle CPU over 10 s, and publish-to-applied: the halves share the cores and
the scheduler's queue, so their latencies differ less than their CPU does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

# fleet_scale puts this checkout's src first on sys.path: its names are taken from it.
from fleet_scale import (
    PREFIX,
    RedisServer,
    SpecStore,
    applied_at,
    cpu_seconds,
    percentile,
    settle,
    spec,
    stop_spawners,
    wait_heartbeats,
)

HERE = Path(__file__).resolve()
SPAWN = 100


def start_half(url: str, bench: Path, first: int) -> tuple[subprocess.Popen[str], list[int]]:
    """Start SPAWN subscribers (ids from first) with the code of bench's checkout."""
    proc = subprocess.Popen(
        [sys.executable, str(bench), "--child", url, str(first), str(SPAWN), "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    word, *pids = proc.stdout.readline().split()
    if word != "ready":
        raise SystemExit(f"{bench} did not start its subscribers")
    return proc, [int(pid) for pid in pids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="the other checkout (A)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    other = args.against.resolve() / "bench" / "fleet_scale.py"
    if not other.exists():
        parser.error(f"{other} does not exist: --against needs a checkout with that bench")
    size = args.subscribers - args.subscribers % (2 * SPAWN)
    with RedisServer() as server:
        os.nice(10)  # as fleet_scale.py: the measuring yields like the measured
        client = redis.Redis.from_url(server.url, socket_timeout=60)
        store = SpecStore(client, PREFIX)
        children: list[subprocess.Popen[str]] = []
        pids: dict[str, list[int]] = {"A": [], "B": []}
        try:
            for first in range(0, size, SPAWN):
                half = "A" if first // SPAWN % 2 == 0 else "B"
                bench = other if half == "A" else HERE.parent / "fleet_scale.py"
                proc, forked = start_half(server.url, bench, first)
                children.append(proc)
                pids[half] += forked
                wait_heartbeats(client, store, first + SPAWN)
            ids = [f"sub-{n:05d}" for n in range(size)]
            half_of = {i: "A" if n // SPAWN % 2 == 0 else "B" for n, i in enumerate(ids)}
            settle(since=time.monotonic())
            latencies: dict[str, list[float]] = {"A": [], "B": []}
            used = {half: cpu_seconds(pids[half]) for half in pids}
            for n in range(-3, args.rounds):
                body = spec(n)
                store.put("bench", body)
                found: dict[str, dt.datetime] = {}
                deadline = time.monotonic() + 60
                while len(found) < size and time.monotonic() < deadline:
                    applied_at(client, ids, body["lastmodified"], found)
                    time.sleep(0.2)
                if n == -1:  # the warm-up is over
                    used = {half: cpu_seconds(pids[half]) for half in pids}
                elif n >= 0:
                    for process_id, at in found.items():
                        ms = (at - body["lastmodified"]).total_seconds() * 1000
                        latencies[half_of[process_id]].append(ms)
                time.sleep(0.5)
            per_publish = {
                half: (cpu_seconds(pids[half]) - used[half]) / args.rounds / len(pids[half])
                for half in pids
            }
            before = {half: cpu_seconds(pids[half]) for half in pids}
            time.sleep(10)
            idle = {
                half: (cpu_seconds(pids[half]) - before[half]) / 10 / len(pids[half])
                for half in pids
            }
        finally:
            stop_spawners(children)
        print(f"{size} subscribers: A from {args.against}, B from {HERE.parent.parent}")
        for half in ("A", "B"):
            lat = latencies[half]
            print(
                f"  {half}: {per_publish[half] * 1000:.3f} ms of CPU per subscriber and publish, "
                f"{idle[half] * 1000:.3f} ms a second idle; publish-to-applied p50 "
                f"{statistics.median(lat):.0f} ms, p99 {percentile(lat, 99):.0f} ms"
            )
        change = per_publish["B"] / per_publish["A"] - 1
        load = os.getloadavg()[0]
        print(f"  B against A: {change:+.0%} CPU per publish (load average {load:.0f})")


if __name__ == "__main__":
    main()
