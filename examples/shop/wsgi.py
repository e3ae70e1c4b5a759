"""The shop's WSGI application with the subscriber started at import: the one-line way.

With ``gunicorn --preload`` the master imports this module, starts the subscriber, then
forks the workers; each worker's subscriber starts by itself after the fork, and the master
reports itself as a pre-fork parent (left out of counts and ``--wait``)::

    PYTHONPATH=examples gunicorn --preload -w 4 shop.wsgi:app
"""

from __future__ import annotations

import diagnose_redis
from shop.web import app

__all__ = ("app",)

diagnose_redis.start()
