"""What fleet statistics cost Redis: the flushes of 1,000 processes, and `coordinator stats`.

Run ``python bench/stats_redis.py [--processes 1000] [--rounds 5] [--calls 1000]`` (``make
bench-stats``). It starts a private redis-server, publishes a ``stats`` and a ``distinct``
spec, and plays ``--processes`` processes that each call the probed function ``--calls``
times a second: each round (one second of the fleet), every process folds that second's
values into its real aggregates and merges the takes with the real writers, in one
MULTI/EXEC as its flusher would. Redis's own figures (INFO cpu, commandstats, stats) are
read between the rounds, and the first round (every bucket new) is shown apart, then:

- Redis CPU per process per second (one flush) of the stats and of the distinct spec, what
  share of one Redis core the whole fleet's flushes take, and a PING's for scale (what
  one round trip costs this server whatever it carries);
- commands run per flush (the script's own calls included) and bytes received per flush;
- memory of the statistics per process;
- how long `coordinator stats` takes to read and merge all of it, and the distinct count.

The processes are played one after the other by this script: what is measured is Redis's
work, which does not depend on how many clients send it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coordinator._context import Settings  # noqa: E402
from coordinator.commands.stats import read_report  # noqa: E402
from coordinator.embedded import RedisServer  # noqa: E402
from diagnose.instruments import DistinctInstrument, StatsInstrument  # noqa: E402
from diagnose.outbox import Origin  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from diagnose_redis._subscriber import stats_writer  # noqa: E402
from diagnose_redis.protocol import Keys  # noqa: E402

PREFIX = "bench"
TIERS = ("gold", "silver", "bronze")


def server_figures(client: redis.Redis) -> dict[str, float]:
    """Return Redis's CPU seconds, commands run and bytes received so far."""
    cpu = client.info("cpu")
    stats = client.info("stats")
    commands = client.info("commandstats")
    return {
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "commands": sum(int(row["calls"]) for row in commands.values()),
        "bytes": float(stats["total_net_input_bytes"]),
    }


class Process:
    """One played process: its stats and distinct instruments, fed as the probe would."""

    def __init__(self, number: int, by: bool) -> None:
        self.id = f"web-{number // 50}:{1000 + number}"
        custom = {"by": "tier"} if by else {}
        self.stats = StatsInstrument("lat", "elapsed", custom=custom)
        self.stats.aggregate.origin = Origin("lat", "stats")
        self.users = DistinctInstrument("users", "user")
        self.users.aggregate.origin = Origin("users", "distinct")
        self.rng = random.Random(number)

    def second(self, calls: int, users: int) -> None:
        """Feed one second of calls: latencies around 20 ms, users from a pool."""
        rng = self.rng
        for _ in range(calls):
            names = {
                "elapsed": rng.lognormvariate(-4, 0.6),
                "tier": TIERS[rng.randrange(3)],
                "user": rng.randrange(users),
            }
            self.stats.fire({}, names)
            self.users.fire({}, names)

    def flush(self, client: redis.Redis, keys: Keys, which: str) -> None:
        """Merge a take in one transaction, as the flusher does (it merges both in one)."""
        instrument, write = (
            (self.stats, stats_writer.write_stats)
            if which == "stats"
            else (self.users, stats_writer.write_distinct)
        )
        take = instrument.aggregate.take()
        if take is not None:
            pipe = client.pipeline(transaction=True)
            write(pipe, keys, self.id, instrument.aggregate, take)
            pipe.execute()


def publish(store: SpecStore) -> None:
    for spec_id, itype, value in (("lat", "stats", "elapsed"), ("users", "distinct", "user")):
        store.put(
            spec_id,
            {
                "target": "shop.pricing.total",
                "instrument": {"type": itype, "name": spec_id, "value": value},
                "lifespan": 60,
                "lastmodified": dt.datetime.now(dt.UTC),
            },
        )


def run(processes: int, rounds: int, calls: int, users: int, by: bool) -> None:
    server = RedisServer()
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        keys = Keys(PREFIX)
        publish(SpecStore(client, PREFIX))
        stats_writer.use(secret=b"bench secret", labels=lambda: {"version": "1"})
        fleet = [Process(n, by) for n in range(processes)]
        memory_before = int(client.info("memory")["used_memory"])
        print(
            f"{processes} processes, {calls} calls/s each, stats of elapsed"
            f"{' by tier' if by else ''} and distinct of user ({users} users), "
            f"{rounds} rounds of one second each"
        )
        print(
            "Redis CPU per process per second (one flush), and the fleet's share of one Redis"
            " core;\ncommands run (the scripts' own calls included) and bytes received per flush"
        )
        print(
            f"{'round':<7}{'stats':>9}{'distinct':>10}{'share':>8}{'PING':>8}"
            f"{'commands':>10}{'bytes':>8}"
        )
        for round_number in range(rounds):
            for process in fleet:
                process.second(calls, users)
            cost: dict[str, float] = {}
            figures = server_figures(client)
            for which in ("stats", "distinct", "ping"):
                for process in fleet:
                    if which == "ping":
                        client.ping()
                    else:
                        process.flush(client, keys, which)
                after = server_figures(client)
                for name in ("cpu", "commands", "bytes"):
                    cost[f"{which} {name}"] = (after[name] - figures[name]) / processes
                figures = after
            both = cost["stats cpu"] + cost["distinct cpu"]
            commands = cost["stats commands"] + cost["distinct commands"]
            received = cost["stats bytes"] + cost["distinct bytes"]
            label = "first" if round_number == 0 else str(round_number)
            print(
                f"{label:<7}{cost['stats cpu'] * 1e6:>6.0f} µs{cost['distinct cpu'] * 1e6:>7.0f} µs"
                f"{both * processes * 100:>7.1f}%{cost['ping cpu'] * 1e6:>5.0f} µs"
                f"{commands:>10.0f}{received:>8.0f}"
            )
        memory = int(client.info("memory")["used_memory"]) - memory_before
        print(f"memory of the statistics: {memory / processes / 1024:.1f} KiB per process")
        settings = Settings(redis_url=server.url, prefix=PREFIX)
        for spec_id in ("lat", "users"):
            start = time.perf_counter()
            report = read_report(settings, spec_id)
            took = time.perf_counter() - start
            rows: dict[str, Any] = report.fleet
            shown = ", ".join(
                f"{g}: {getattr(r, 'distinct', None) or r.count}" for g, r in rows.items()
            )
            print(f"coordinator stats {spec_id}: {took * 1000:.0f} ms to read and merge ({shown})")
        settings.close()
        client.close()
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000, help="calls per second per process")
    parser.add_argument("--users", type=int, default=100_000, help="distinct users in the pool")
    parser.add_argument("--by", action="store_true", help="stats by tier (3 groups)")
    opts = parser.parse_args()
    run(opts.processes, opts.rounds, opts.calls, opts.users, opts.by)


if __name__ == "__main__":
    main()
