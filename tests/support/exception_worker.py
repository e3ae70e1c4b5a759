"""A worker process for the exception replay tests: a subscriber, and a target that raises
along two code paths, with secrets among its locals and in a message.

Run as ``python tests/exception_worker.py --url URL --prefix P --process-id ID``. It starts
diagnose_redis, prints ``ready ID``, then obeys one command per stdin line:

- ``raise N``: call ``checkout(i)`` for i in 0..N-1, catching what it raises; print
  ``raised JSON``: the raises this process counted so far, per exception type name;
- ``shapes``: print ``shapes JSON``: each distinct traceback the caller saw, as a list of
  (function, line), and whether every exception caught was the very one raised;
- end of input or ``quit``: stop the subscriber cleanly and print ``stopped JSON`` (counts).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

#: Secrets the tests look for in everything the fleet wrote: none may appear.
API_KEY = "sk_live_SECRETa1b2c3d4"
PASSWORD = "pw-SECRET-5678"
TOKEN = "tok-SECRET-9012"

RAISED: list[BaseException] = []


class QuantityError(ValueError):
    """A quantity the shop cannot sell."""


def checkout(n: int) -> int:
    """Return a price for n, or raise: QuantityError for odd n, KeyError for even n."""
    api_key = API_KEY
    basket = {"n": n, "password": PASSWORD, "items": list(range(5))}
    return _price(n, basket, len(api_key))


def _price(n: int, basket: dict[str, object], weight: int) -> int:
    if n % 2:
        return _validate(n, weight)
    return _lookup(basket, n)


def _validate(n: int, weight: int) -> int:
    return _check_quantity(n * weight)


def _check_quantity(quantity: int) -> int:
    error = QuantityError(f"invalid quantity {quantity}: token={TOKEN}")
    RAISED.append(error)
    raise error


def _lookup(basket: dict[str, object], n: int) -> int:
    error = KeyError(f"item-{n % 3}")
    RAISED.append(error)
    raise error


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--process-id", required=True)
    args = parser.parse_args()

    import diagnose_redis
    import exception_worker as this  # the module probes name, not __main__

    subscriber = diagnose_redis.start(args.url, process_id=args.process_id, prefix=args.prefix)
    counts: dict[str, int] = {}
    shapes: set[tuple[tuple[str, int], ...]] = set()
    same = True
    print("ready", subscriber.process_id, flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "raise":
            for i in range(int(arg)):
                try:
                    this.checkout(i)
                except Exception as exc:
                    same = same and exc is this.RAISED[-1]
                    this.RAISED.clear()
                    counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
                    frames = traceback.extract_tb(exc.__traceback__)
                    shapes.add(tuple((f.name, f.lineno or 0) for f in frames))
            print("raised", json.dumps(counts), flush=True)
        elif command == "shapes":
            print("shapes", json.dumps({"shapes": sorted(shapes), "same": same}), flush=True)
        elif command == "quit":
            break
    subscriber.stop()
    print("stopped", json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
