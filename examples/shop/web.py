"""The shop as a WSGI application: every request prices a cart with ``shop.pricing.total``.

Serve it with gunicorn and the configuration next to it, which starts the fleet subscriber
in each worker (``post_fork``) and stops it cleanly (``worker_exit``)::

    PYTHONPATH=examples gunicorn -c examples/gunicorn.conf.py shop.web:app

``GET /?items=apple:2,milk:1&discount=0.1`` answers the cart's total as text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from shop import pricing

__all__ = ("app",)


def _cart(query: str) -> tuple[dict[str, int], float]:
    fields = parse_qs(query)
    items: dict[str, int] = {}
    for part in (fields.get("items") or ["apple:1"])[0].split(","):
        name, _, count = part.partition(":")
        if name in pricing.PRICES:
            items[name] = items.get(name, 0) + int(count or 1)
    discount = float((fields.get("discount") or ["0"])[0])
    return items, discount


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer the total of the cart the query describes, and the worker's pid."""
    try:
        items, discount = _cart(environ.get("QUERY_STRING", ""))
    except ValueError:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"bad cart\n"]
    body = f"{pricing.total(items, discount)} {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
