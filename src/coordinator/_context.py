"""The global options of the command line, and the Redis client and store they lead to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordinator._errors import BadInput
from diagnose_redis import BadURL, connect
from diagnose_redis import redact_url as redact

__all__ = ("DEFAULT_PREFIX", "DEFAULT_URL", "Settings", "redact")

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "diagnose"
# One deadline for connecting and for every answer, with no retry: a server that accepts and
# never answers fails the command within it (exit 4).
REDIS_DEADLINE = 2.0


@dataclass
class Settings:
    """What the global options chose: where Redis is, the key prefix, the secret, --json."""

    redis_url: str | None = None
    prefix: str = DEFAULT_PREFIX
    secret: str | None = None
    json: bool = False
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Return the Redis URL to use."""
        return self.redis_url or DEFAULT_URL

    def client(self) -> redis.Redis:
        """Return a Redis client that fails fast when the server cannot be reached."""
        if self._client is None:
            try:
                self._client = connect(
                    self.url,
                    socket_connect_timeout=REDIS_DEADLINE,
                    socket_timeout=REDIS_DEADLINE,
                    retry=Retry(NoBackoff(), 0),
                    prefix=self.prefix,
                )
            except BadURL as exc:
                raise BadInput(f"invalid Redis URL {redact(self.url)!r}: {exc}")
        return self._client

    def store(self) -> Any:
        """Return the fleet's spec store on this Redis (exit 2 if the secret cannot be read:
        the message names key ids and item numbers, never a secret)."""
        from diagnose_redis import SpecStore
        from diagnose_redis.exceptions import KeyringError

        try:
            return SpecStore(self.client(), prefix=self.prefix, secret=self.secret)
        except KeyringError as exc:
            raise BadInput(f"--secret (DIAGNOSE_SECRET) cannot be read: {exc}") from None

    def close(self) -> None:
        """Close the Redis client, if one was made."""
        if self._client is not None:
            self._client.close()
            self._client = None
