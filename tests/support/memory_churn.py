"""Publish and remove specs through a live subscriber; print the memory kept, as JSON.

Run by tests/integration/test_memory.py in a process of its own:
``python tests/support/memory_churn.py URL PREFIX``.
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from pathlib import Path

# tests/, where support and probe_targets are.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from diagnose import ProbeManager, ProbeTestInstrument  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from diagnose_redis._subscriber.listener import Subscriber  # noqa: E402
from probe_targets import shop  # noqa: E402
from support.probes import churn_spec  # noqa: E402
from support.waiting import wait_for  # noqa: E402

BATCH = 5


def main(url: str, prefix: str) -> None:
    manager = ProbeManager(process_id="memory-churn")
    manager.instrument_classes["test"] = ProbeTestInstrument
    client = redis.Redis.from_url(url)
    store = SpecStore(client, prefix=prefix)
    sub = Subscriber(url, process_id="memory:1", prefix=prefix, manager=manager).start()
    assert sub.connected.wait(5), "the subscriber did not connect"

    def batch(first: int) -> None:
        ids = [f"m{first + k}" for k in range(BATCH)]
        events = ("return", "end", "call")
        store.put_many(
            {s: churn_spec(events[n % 3], f"amount + {first + n}") for n, s in enumerate(ids)}
        )
        assert wait_for(lambda: all(s in manager.specs for s in ids), 20), "not applied"
        shop.price(2)
        store.remove(*ids)
        assert wait_for(lambda: not any(s in manager.specs for s in ids), 20), "not removed"

    tracemalloc.start()
    for first in range(0, 300, BATCH):
        batch(first)
    gc.collect()
    before = tracemalloc.take_snapshot()
    measured = range(300, 600, BATCH)
    for first in measured:
        batch(first)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    sub.stop()
    client.close()
    stats = after.compare_to(before, "lineno")
    growth = sum(stat.size_diff for stat in stats)
    top = [str(stat) for stat in stats[:3]]
    print(json.dumps({"growth": growth, "specs": len(measured) * BATCH, "top": top}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
