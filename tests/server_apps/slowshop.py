"""A shop whose module takes a while to import, as a real application's does.

The probe the server tests publish is on ``total``, in this module: a worker that boots
while it is live resolves its target while the server imports the module. Import time is
``SLOWSHOP_IMPORT_SECONDS`` (default 1), spent in ``time.sleep`` (a cooperative wait under
gevent, where the deadlock this shows happened).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ("PRICES", "answer", "app", "total")

time.sleep(float(os.environ.get("SLOWSHOP_IMPORT_SECONDS", "1")))

PRICES = {"apple": 0.5, "milk": 1.2}


def total(items: dict[str, int]) -> float:
    """Return what a cart costs."""
    return round(sum(PRICES[item] * count for item, count in items.items()), 2)


def answer() -> bytes:
    """Return the body every request gets: the total of a fixed cart, and this pid."""
    return f"{total({'apple': 2, 'milk': 1})} {os.getpid()}\n".encode()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application."""
    body = answer()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
