"""A worker process for the fleet statistics tests: a target that takes known values, and a
subscriber.

Run as ``python tests/support/stats_worker.py --url URL --prefix P [--process-id ID] [--labels
name=value,...]``. It starts diagnose_redis, prints ``ready ID``, then obeys one command per
stdin line:

- ``feed SEED COUNT``: call ``stats_worker.measure`` with each of ``stats_values.values(SEED,
  COUNT)`` and print ``fed COUNT``;
- ``odd``: call it with values that are not numbers (None, "text", True, NaN, inf, a list)
  and print ``odd 6``;
- end of input or ``quit``: stop the subscriber cleanly and exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def measure(value: Any, tier: str, user: Any) -> Any:
    """Return value: the function the tests put stats and distinct probes on."""
    return value


ODD = (None, "text", True, float("nan"), float("inf"), [1, 2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--process-id")
    parser.add_argument("--labels", help="DIAGNOSE_LABELS for this worker")
    args = parser.parse_args()
    if args.labels is not None:
        os.environ["DIAGNOSE_LABELS"] = args.labels

    import diagnose_redis
    import stats_values
    import stats_worker

    subscriber = diagnose_redis.start(args.url, process_id=args.process_id, prefix=args.prefix)
    print("ready", subscriber.process_id, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "feed":
            seed, count = int(rest[0]), int(rest[1])
            for value, tier, user in stats_values.values(seed, count):
                stats_worker.measure(value, tier, user)
            print("fed", count, flush=True)
        elif command == "odd":
            for odd in ODD:
                stats_worker.measure(odd, "odd", odd)
            print("odd", len(ODD), flush=True)
        elif command == "quit":
            break
    subscriber.stop()


if __name__ == "__main__":
    main()
