"""The shop as a Celery app: a task that prices a cart, and the fleet subscriber per child.

    PYTHONPATH=examples celery -A shop.tasks worker -P prefork -c 2

The broker is ``SHOP_BROKER_URL`` (default: ``DIAGNOSE_REDIS_URL``, else a local Redis).
Each pool child starts its subscriber in ``worker_process_init`` and stops it in
``worker_process_shutdown``: Celery ends its children with ``os._exit``, which runs no exit
handler, so without that hook a recycled child would look alive until its heartbeat ages.

Celery writes a child's stdout (where ``log`` probes print) to its log at WARNING: start the
worker with ``--loglevel=WARNING`` or lower to see probe lines, or send them through
``logging`` with ``diagnose.LogInstrument.logger``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from shop import pricing

__all__ = ("app", "price_cart")

BROKER = (
    os.environ.get("SHOP_BROKER_URL")
    or os.environ.get("DIAGNOSE_REDIS_URL")
    or "redis://localhost:6379/0"
)

app = Celery("shop", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


@app.task(name="shop.price_cart")
def price_cart(items: dict[str, int], discount: float = 0.0) -> float:
    """Return the total of a cart."""
    return pricing.total(items, discount)


@worker_process_init.connect
def start_subscriber(**_: Any) -> None:
    """Start the fleet subscriber in each pool child."""
    import diagnose_redis

    diagnose_redis.start()


@worker_process_shutdown.connect
def stop_subscriber(**_: Any) -> None:
    """Stop it when the child ends, so the fleet sees it leave at once."""
    import diagnose_redis

    diagnose_redis.stop()
