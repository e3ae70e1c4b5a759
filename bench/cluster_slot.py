"""Measure what one fleet costs the cluster primary that owns its slot.

Run ``python bench/cluster_slot.py --subscribers 200 --seconds 20 --publishes 20``. It
starts a three-primary cluster on loopback (tests/support/topologies.py), runs that many
real ``Subscriber`` objects in this process (each its own connections and process id, each
with a manager of its own; the spec targets a function that does not exist, so applying it
is an error that costs no patching, and its status write is what a real apply writes), and
reads the CPU time the owner of the fleet's slot used (INFO cpu) and its commands (INFO
commandstats):

- at rest (heartbeats and resyncs alone), per subscriber per second, less what the node
  uses with no fleet at all (its cron and cluster bus);
- per publish, fanned out to every subscriber (SPUBLISH, their status writes); the bench
  waits for the subscribers in this process (their applied version), never by reading
  Redis, so that its own reads are not counted as the fleet's.

From these it prints the fleet size at which the owner's single thread would be half busy
at rest, and with one publish a second: where one slot (one shard) stops being enough.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from diagnose import ProbeManager  # noqa: E402
from diagnose_redis import SpecStore, Subscriber, connect  # noqa: E402
from diagnose_redis.connection.slot import slot_of  # noqa: E402
from support.topologies import Cluster, wait_for  # noqa: E402

PREFIX = "bench"


def cpu_seconds(node: object) -> float:
    """Return the CPU time (user + system) the node's process has used."""
    info = node.client().info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def commands(node: object) -> int:
    """Return how many commands the node has run."""
    stats = node.client().info("commandstats")  # type: ignore[attr-defined]
    return sum(int(entry["calls"]) for entry in stats.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--publishes", type=int, default=20)
    args = parser.parse_args()
    cluster = Cluster().start()
    subscribers: list[Subscriber] = []
    try:
        store = SpecStore(connect(cluster.url, prefix=PREFIX), PREFIX)
        owner = cluster.owner(slot_of(store.keys.prefix))
        # The node's own cost (cron, cluster bus) with no fleet: not the fleet's.
        cpu, began = cpu_seconds(owner), time.monotonic()
        time.sleep(5)
        idle_cpu = (cpu_seconds(owner) - cpu) / (time.monotonic() - began)
        for n in range(args.subscribers):
            subscribers.append(
                Subscriber(cluster.url, process_id=f"s-{n}", prefix=PREFIX, manager=ProbeManager())
            )
            subscribers[-1].start()
        wait_for(lambda: all(s.connected.is_set() for s in subscribers), 60, "subscribers")
        time.sleep(6)  # every subscriber has heartbeaten once since it connected

        cpu, ran, began = cpu_seconds(owner), commands(owner), time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - began
        rest_cpu = ((cpu_seconds(owner) - cpu) / elapsed - idle_cpu) / args.subscribers
        rest_cmds = (commands(owner) - ran) / elapsed / args.subscribers

        cpu, ran, began = cpu_seconds(owner), commands(owner), time.monotonic()
        for n in range(args.publishes):
            spec = {
                "target": "bench.no_such_function",
                "instrument": {"type": "log", "name": f"p{n}", "value": "1"},
            }
            version = store.put(f"p{n}", spec)
            wait_for(lambda v=version: all(s.version >= v for s in subscribers), 30, "every apply")
        # The status writes were sent with the applies (their replies are read later):
        # a moment for Redis to run the last ones, charged as time at rest too.
        time.sleep(0.2)
        spent = time.monotonic() - began
        publish_cpu = (cpu_seconds(owner) - cpu - rest_cpu * args.subscribers * spent) / (
            args.publishes
        )
        publish_cmds = (commands(owner) - ran) / args.publishes
    finally:
        for subscriber in subscribers:
            subscriber.stop(timeout=1)
        cluster.cleanup()

    n = args.subscribers
    print(f"subscribers: {n} on one slot of a three-primary cluster ({owner.binary})")
    print(f"the node alone: {idle_cpu * 1e3:.1f} ms CPU/s (left out below)")
    print(f"at rest: {rest_cpu * 1e6:.1f} us CPU and {rest_cmds:.2f} commands per subscriber/s")
    print(
        f"per publish to {n}: {publish_cpu * 1e3:.1f} ms CPU "
        f"({publish_cpu / n * 1e6:.1f} us per subscriber), {publish_cmds:.0f} commands"
    )
    half = 0.5 / rest_cpu
    busy = 0.5 / (rest_cpu + publish_cpu / n)
    print(f"owner half busy at rest: {half:,.0f} subscribers")
    print(f"owner half busy with one publish a second: {busy:,.0f} subscribers")


if __name__ == "__main__":
    main()
