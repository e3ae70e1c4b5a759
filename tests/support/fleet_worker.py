"""A worker process of the fleet for tests and the bench: a target function and a subscriber.

Run as ``python tests/support/fleet_worker.py --url URL --prefix P [--process-id ID] [--secret S]
[--labels name=value,...]``.
It starts diagnose_redis, prints ``ready``, then obeys one command per stdin line:

- ``call X``: call ``fleet_worker.work(X)`` and print ``called RESULT`` (a probe on the target
  prints its ``Probe (NAME) = VALUE`` line first);
- ``fork``: fork a child that keeps its own subscriber running, calls the target once a
  second, and exits when this process does; prints ``forked PID``;
- ``status``: print ``status JSON`` with the subscriber's counters;
- ``rss``: print ``rss KB`` (resident memory);
- end of input or ``quit``: stop the subscriber cleanly and exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings


def work(x: int) -> int:
    """Return twice x: the function the tests put probes on."""
    return x * 2


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _child_loop(parent: int) -> None:
    import fleet_worker

    while os.getppid() == parent:
        fleet_worker.work(1)
        sys.stdout.flush()
        time.sleep(0.2)
    sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--process-id")
    parser.add_argument("--secret")
    parser.add_argument("--labels", help="DIAGNOSE_LABELS for this worker")
    args = parser.parse_args()
    if args.labels is not None:
        os.environ["DIAGNOSE_LABELS"] = args.labels

    import diagnose_redis
    import fleet_worker

    subscriber = diagnose_redis.start(
        args.url, process_id=args.process_id, prefix=args.prefix, secret=args.secret
    )
    print("ready", subscriber.process_id, flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "call":
            print("called", fleet_worker.work(int(arg)), flush=True)
        elif command == "fork":
            parent = os.getpid()
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork() with threads running; forking with the
                # subscriber's threads running is exactly the case under test.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                _child_loop(parent)
            print("forked", pid, flush=True)
        elif command == "status":
            current = diagnose_redis.start()
            info = current.process_info()
            info["owned"] = sorted(current.owned)
            print("status", json.dumps(info), flush=True)
        elif command == "rss":
            print("rss", _rss_kb(), flush=True)
        elif command == "quit":
            break
    subscriber.stop()


if __name__ == "__main__":
    main()
