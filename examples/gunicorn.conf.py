"""gunicorn configuration that runs the fleet subscriber in every worker.

    PYTHONPATH=examples gunicorn -c examples/gunicorn.conf.py shop.web:app

``post_fork`` starts the subscriber in each worker, under its own process id (a
``DIAGNOSE_PROCESS_ID`` shared by all workers becomes ``ID`` for the first and ``ID:PID``
for the others). ``worker_exit`` stops it, so that a worker that leaves (a reload, a
``max_requests`` recycle) leaves the fleet's live list at once.
"""

from __future__ import annotations

import os

bind = os.environ.get("SHOP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SHOP_WORKERS", "2"))


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """Start this worker's fleet subscriber."""
    import diagnose_redis

    diagnose_redis.start()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Stop it, removing the worker's status at once."""
    import diagnose_redis

    diagnose_redis.stop()
