"""A worker process for the output stream's tests: a target function, a subscriber, commands.

Run as ``python tests/support/output_worker.py --url URL --prefix P --process-id ID [--outbox N]``
(``--outbox``: the outbox holds N entries at most; ``--no-budget``: no evaluation budget, for
a bench of a hundred workers on two cores, where preemption counts as evaluation). It
prints ``ready ID``, then obeys one command per stdin line:

- ``call X``: call ``output_worker.work(X)``, print ``called X``;
- ``burst N``: call it N times (X = 0..N-1) at once, print ``burst N``;
- ``run RATE SECONDS``: call it RATE times a second for SECONDS in this thread, print
  ``ran COUNT ELAPSED`` (the target's thread never waits for Redis: ELAPSED says so);
- ``outbox``: print ``outbox JSON`` with the outbox's and the outflow's counters;
- ``quit`` or end of input: stop the subscriber cleanly and exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def work(x: int, password: str = "hunter2") -> dict[str, object]:
    """Return a dict with a secret in it: the function the tests put probes on."""
    total = 0
    for _ in range(2):
        total += x  # loop line
    return {"x": total, "api_key": "sk-live-123"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--process-id", required=True)
    parser.add_argument("--outbox", type=int)
    parser.add_argument("--no-budget", action="store_true")
    args = parser.parse_args()

    import diagnose_redis
    import output_worker
    from diagnose.outbox import OUTBOX

    if args.no_budget:
        import diagnose

        diagnose.manager.budget = None
    if args.outbox:
        OUTBOX.max_entries = args.outbox
        OUTBOX.clear()
    subscriber = diagnose_redis.start(args.url, process_id=args.process_id, prefix=args.prefix)
    print("ready", subscriber.process_id, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "call":
            output_worker.work(int(rest[0]))
            print("called", rest[0], flush=True)
        elif command == "burst":
            for x in range(int(rest[0])):
                output_worker.work(x)
            print("burst", rest[0], flush=True)
        elif command == "run":
            rate, seconds = float(rest[0]), float(rest[1])
            start = time.monotonic()
            count = 0
            while time.monotonic() - start < seconds:
                output_worker.work(count)
                count += 1
                time.sleep(max(0.0, start + count / rate - time.monotonic()))
            print("ran", count, f"{time.monotonic() - start:.3f}", flush=True)
        elif command == "outbox":
            outflow = subscriber.outflow
            info = {
                "dropped": OUTBOX.dropped_counts(),
                "held": len(OUTBOX),
                "sent": outflow.sent,
                "failures": outflow.failures,
            }
            print("outbox", json.dumps(info), flush=True)
        elif command == "quit":
            break
    subscriber.stop()


if __name__ == "__main__":
    main()
