"""Redis URL -> redis-py client: the one place every part of the project connects through.

The subscriber, the command line and ``coordinator serve`` all build their clients here, so
that a new kind of URL (Sentinel, Cluster) is taught once. Today: ``redis://``, ``rediss://``
(TLS) and ``unix://``; the Sentinel and Cluster schemes are recognised and refused with one
line naming them.

Clients leave out the handshake commands newer redis-py versions send on every connection
(CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS): a subscriber on each of a thousand processes
reconnecting after a Redis restart should cost the server as little as it can.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from diagnose._text import one_line

from .exceptions import BadURL, UnsupportedURL

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.client

__all__ = (
    "SCHEMES",
    "UNSUPPORTED_SCHEMES",
    "client_name",
    "connect",
    "connect_async",
    "database",
    "pubsub",
    "redact_url",
)

SCHEMES = ("redis", "rediss", "unix")
UNSUPPORTED_SCHEMES = ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")

# user:password@ in the authority, and password=... in the query string.
_AUTHORITY_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)
# CLIENT SETNAME takes printable ASCII without spaces only.
_NAME_UNSAFE = re.compile(r"[^!-~]")


def redact_url(url: str) -> str:
    """Return the URL with any password shown as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _AUTHORITY_PASSWORD.sub(r"\1***@", url))


def client_name(name: str) -> str:
    """Return name as Redis accepts it for CLIENT SETNAME (unsafe characters as ``_``)."""
    return _NAME_UNSAFE.sub("_", name)


def _quiet_options() -> dict[str, Any]:
    # Spelled as the installed redis-py version wants.
    options: dict[str, Any] = {}
    try:
        import redis.driver_info  # noqa: F401

        options["driver_info"] = None
    except ImportError:
        options["lib_name"] = None
        options["lib_version"] = None
    try:
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    except ImportError:
        pass
    return options


_QUIET: dict[str, Any] | None = None


def _import_now() -> None:
    # Connecting by host name imports the idna codec (and stringprep, unicodedata) on first
    # use. Done in a subscriber's thread while the host forks (gunicorn --preload), that
    # import's lock would stay held in the child for ever, and the child's own subscriber,
    # or the host, would hang on its next host-name lookup. So: import it in the caller.
    import codecs

    codecs.lookup("idna")


def _options(
    url: str,
    decode_responses: bool,
    socket_timeout: float | None,
    socket_connect_timeout: float | None,
    retry: Any,
    name: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    global _QUIET
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in UNSUPPORTED_SCHEMES:
        raise UnsupportedURL(
            f"{scheme}:// URLs are not supported yet; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if _QUIET is None:
        _import_now()
        _QUIET = _quiet_options()
    options: dict[str, Any] = {**_QUIET, "decode_responses": decode_responses}
    if socket_timeout is not None:
        options["socket_timeout"] = socket_timeout
    if socket_connect_timeout is not None:
        options["socket_connect_timeout"] = socket_connect_timeout
    if retry is not None:
        options["retry"] = retry
    if name is not None:
        options["client_name"] = client_name(name)
    options.update(extra)
    return options


def _bad_url(url: str, exc: Exception) -> BadURL:
    text = one_line(exc, bare=True)
    return BadURL(redact_url(text) if "://" in text else text)


def connect(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Any = None,
    client_name: str | None = None,
    **extra: Any,
) -> redis.Redis:
    """Return a client for url (it connects on first use); raise BadURL if url is unusable.

    client_name names every connection of the client (CLIENT SETNAME); extra goes to
    redis-py as it is (``socket_keepalive``, ``health_check_interval``, ...).
    """
    import redis

    options = _options(
        url, decode_responses, socket_timeout, socket_connect_timeout, retry, client_name, extra
    )
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise _bad_url(url, exc) from None


def connect_async(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Any = None,
    client_name: str | None = None,
    **extra: Any,
) -> redis.asyncio.Redis:
    """Return an asyncio client for url, as connect() does."""
    import redis.asyncio

    options = _options(
        url, decode_responses, socket_timeout, socket_connect_timeout, retry, client_name, extra
    )
    try:
        return redis.asyncio.Redis.from_url(url, **options)
    except ValueError as exc:
        raise _bad_url(url, exc) from None


def pubsub(client: redis.Redis) -> redis.client.PubSub:
    """Return a pub/sub object on client's server (in Cluster mode, a node of it)."""
    return client.pubsub()


def database(client: Any) -> int:
    """Return the database number a client (sync or asyncio) selects."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
