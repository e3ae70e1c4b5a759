"""The slow shop with the subscriber started at import: the README's one line."""

from __future__ import annotations

import diagnose_redis
from server_apps.slowshop import app

__all__ = ("app",)

diagnose_redis.start()
