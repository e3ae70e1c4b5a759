"""Redis URL -> redis-py client: the one place every part of the project connects through.

``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` (the primary the Sentinels
name, asked again on every connection) and ``redis+cluster://`` (the primary of the fleet's
slot). Clients skip the handshake commands a thousand reconnecting subscribers don't need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from diagnose.exceptions import one_line
from diagnose_redis.exceptions import BadURL, UnsupportedURL
from diagnose_redis.protocol.keys import client_name, cluster_prefix

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.client

__all__ = (
    "CLUSTER_SCHEMES",
    "SCHEMES",
    "SENTINEL_SCHEMES",
    "Topology",
    "connect",
    "connect_async",
    "database",
    "is_cluster",
    "parse_topology",
    "pubsub",
    "redact_url",
)

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)

# user:password@ in the authority, and password=... in the query string.
_AUTHORITY_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:sentinel_)?password=)[^&]*", re.IGNORECASE)
# CLIENT SETNAME takes printable ASCII without spaces only.
# Query options of the Sentinel and Cluster URLs (the TLS ones as rediss:// takes them).
_TLS_OPTIONS = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


def redact_url(url: str) -> str:
    """Return the URL with any password shown as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _AUTHORITY_PASSWORD.sub(r"\1***@", url))


@dataclass(frozen=True)
class Topology:
    """What a Sentinel or Cluster URL names: its nodes, service, database and credentials."""

    kind: str  # "sentinel" or "cluster"
    tls: bool
    nodes: tuple[tuple[str, int], ...]
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _node(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadURL(f"{text!r} is not host:port")
    return host, int(port_text)


def parse_topology(url: str) -> Topology | None:
    """Return what a Sentinel or Cluster URL names, None for another URL; raise BadURL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*SENTINEL_SCHEMES, *CLUSTER_SCHEMES):
        if sep and "+" in scheme:
            raise UnsupportedURL(
                f"{scheme}:// URLs are not supported; use one of "
                + ", ".join(f"{s}://" for s in SCHEMES)
            )
        return None
    kind = "sentinel" if scheme in SENTINEL_SCHEMES else "cluster"
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        hosts, userinfo = authority, ""
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts:
        raise BadURL(f"a {scheme}:// URL names at least one host:port")
    nodes = tuple(_node(part) for part in hosts.split(",") if part)
    allowed = (*_TLS_OPTIONS, *(_SENTINEL_OPTIONS if kind == "sentinel" else ()))
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BadURL(f"unknown option {unknown[0]!r} in a {scheme}:// URL")
    parts = [unquote(p) for p in path.split("/") if p]
    service = None
    db = 0
    if kind == "sentinel":
        if not parts or len(parts) > 2:
            raise BadURL(f"a {scheme}:// URL ends in /SERVICE or /SERVICE/DB")
        service = parts[0]
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise BadURL(f"database {parts[1]!r} is not a number")
            db = int(parts[1])
    elif parts and parts != ["0"]:
        raise BadURL(f"a {scheme}:// URL names no service nor database (a cluster has only 0)")
    return Topology(
        kind, scheme.startswith("rediss"), nodes, service, db, username, password, options
    )


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
    decode_responses: bool,
    socket_timeout: float | None,
    socket_connect_timeout: float | None,
    retry: Any,
    name: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    global _QUIET
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


def _tls(topology: Topology) -> dict[str, Any]:
    if not topology.tls:
        return {}
    tls: dict[str, Any] = {"ssl": True}
    for name in _TLS_OPTIONS:
        if name in topology.options:
            tls[name] = topology.options[name]
    if tls.get("ssl_cert_reqs") == "none":
        tls["ssl_check_hostname"] = False
    return tls


def _credentials(topology: Topology) -> dict[str, Any]:
    found = {"username": topology.username, "password": topology.password}
    return {k: v for k, v in found.items() if v is not None}


def _sentinel_options(topology: Topology, options: dict[str, Any]) -> dict[str, Any]:
    """Return the options of the connections to the Sentinels themselves."""
    kept = ("socket_timeout", "socket_connect_timeout", "retry", *(_QUIET or {}))
    sentinel = {k: v for k, v in options.items() if k in kept}
    sentinel.update(_tls(topology))
    for name in _SENTINEL_OPTIONS:
        if name in topology.options:
            sentinel[name.removeprefix("sentinel_")] = topology.options[name]
    return sentinel


def _cluster_retry(retry: Any) -> Any:
    """Return retry, but with at least one retry: a moved slot costs one reconnection."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if retry is None or retry.get_retries() >= 1:
        return retry
    return Retry(NoBackoff(), 1)


def _cluster_pool_options(
    topology: Topology, options: dict[str, Any], prefix: str | None
) -> dict[str, Any]:
    from diagnose_redis.connection.slot import SlotLocator, slot_of

    options = {**options, **_credentials(topology), **_tls(topology)}
    locator = SlotLocator(
        list(topology.nodes), slot_of(cluster_prefix(prefix or "diagnose")), options
    )
    options.pop("ssl", None)
    return {**options, "locator": locator}


def connect(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Any = None,
    client_name: str | None = None,
    prefix: str | None = None,
    **extra: Any,
) -> redis.Redis:
    """Return a client for url (it connects on first use); raise BadURL if url is unusable.

    client_name names every connection of the client (CLIENT SETNAME); prefix is the fleet's
    (a Cluster URL connects to the owner of its slot); extra goes to redis-py as it is
    (``socket_keepalive``, ``health_check_interval``, ...).
    """
    import redis
    from redis.sentinel import Sentinel

    from diagnose_redis.connection.slot import SlotConnection, SlotSSLConnection

    options = _options(
        decode_responses, socket_timeout, socket_connect_timeout, retry, client_name, extra
    )
    # On a cluster a moved slot costs one reconnection, which this client retries (a
    # redis.retry.Retry is the sync client's; the asyncio client keeps what it was given).
    cluster = {**options, "retry": _cluster_retry(retry)}
    slots = (SlotConnection, SlotSSLConnection)
    return _client(url, options, cluster, prefix, redis, Sentinel, slots)


def connect_async(
    url: str,
    *,
    decode_responses: bool = False,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retry: Any = None,
    client_name: str | None = None,
    prefix: str | None = None,
    **extra: Any,
) -> redis.asyncio.Redis:
    """Return an asyncio client for url, as connect() does."""
    import redis.asyncio
    from redis.asyncio.sentinel import Sentinel

    from diagnose_redis.connection.slot import AsyncSlotConnection, AsyncSlotSSLConnection

    options = _options(
        decode_responses, socket_timeout, socket_connect_timeout, retry, client_name, extra
    )
    slots = (AsyncSlotConnection, AsyncSlotSSLConnection)
    return _client(url, options, options, prefix, redis.asyncio, Sentinel, slots)


def _client(
    url: str,
    options: dict[str, Any],
    cluster_options: dict[str, Any],
    prefix: str | None,
    flavour: Any,
    sentinel_class: Any,
    slot_classes: tuple[Any, Any],
) -> Any:
    """Build a client of flavour (the module redis or redis.asyncio) for url: the one place
    both kinds are built, so that they cannot drift apart."""
    topology = parse_topology(url)
    if topology is not None and topology.kind == "sentinel":
        sentinel = sentinel_class(
            list(topology.nodes), sentinel_kwargs=_sentinel_options(topology, options)
        )
        data = {**options, **_credentials(topology), **_tls(topology), "db": topology.db}
        return sentinel.master_for(str(topology.service), **data)
    if topology is not None:
        kind = slot_classes[1] if topology.tls else slot_classes[0]
        pool_options = _cluster_pool_options(topology, cluster_options, prefix)
        pool = flavour.ConnectionPool(connection_class=kind, **pool_options)
        return flavour.Redis.from_pool(pool)
    try:
        return flavour.Redis.from_url(url, **options)
    except ValueError as exc:
        raise _bad_url(url, exc) from None


def is_cluster(client: Any) -> bool:
    """Tell whether a client (sync or asyncio) talks to the owner of a Cluster slot."""
    return "locator" in client.connection_pool.connection_kwargs


def pubsub(client: redis.Redis) -> redis.client.PubSub:
    """Return a pub/sub object on client's server (in Cluster mode, the slot's owner)."""
    return client.pubsub()


def database(client: Any) -> int:
    """Return the database number a client (sync or asyncio) selects."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
