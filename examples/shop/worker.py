"""A shop worker: attach the fleet subscriber, then price carts in a loop until stopped.

Run it with ``python -m shop.worker`` (``examples/`` on ``PYTHONPATH``). It reads
DIAGNOSE_REDIS_URL, DIAGNOSE_PROCESS_ID, DIAGNOSE_PREFIX and DIAGNOSE_SECRET.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from types import FrameType

import diagnose_redis
from shop import pricing

CUSTOMERS = ("ada", "grace", "linus", "guido", "barbara")
TARGETS = ("shop.pricing.total", "shop.pricing.Cart.checkout", "shop.pricing.pay")


def _probed(target: str) -> bool:
    try:
        from diagnose import probes
    except ImportError:
        return False
    return target in getattr(probes, "active_probes", {})


def main() -> None:
    """Sell random carts every few hundred milliseconds until SIGTERM or SIGINT (some
    payments fail: the worker counts them and carries on)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    interval = float(os.environ.get("SHOP_INTERVAL", "0.5"))
    subscriber = diagnose_redis.start()
    print(f"shop worker {os.getpid()} started", flush=True)
    rng = random.Random()
    probed = dict.fromkeys(TARGETS, False)
    failed = 0
    while not stop.wait(interval):
        customer = rng.choice(CUSTOMERS)
        cart = pricing.Cart(customer)
        for item in rng.sample(sorted(pricing.PRICES), k=rng.randint(1, 3)):
            cart.add(item, rng.randint(1, 4))
        try:
            pricing.pay(cart, f"tok_{customer}_4242", discount=rng.choice((0.0, 0.0, 0.1, 0.25)))
        except pricing.PaymentError:
            failed += 1
        for target, was in probed.items():
            if _probed(target) != was:
                probed[target] = not was
                state = "detached from" if was else "attached to"
                print(f"probe {state} {target}", flush=True)
        sys.stdout.flush()
    subscriber.stop()
    print(f"shop worker stopped ({failed} payments failed)", flush=True)


if __name__ == "__main__":
    main()
