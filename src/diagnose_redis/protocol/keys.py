"""The Redis key layout of a fleet: key and channel names under one prefix, spec ids, and
how long a process's status keys live without a heartbeat."""

from __future__ import annotations

import re
from typing import NamedTuple

from diagnose_redis.exceptions import SpecIdError

__all__ = (
    "HEARTBEAT_SECONDS",
    "ExceptionKeys",
    "PROCESS_FIELD",
    "SPEC_ID_PATTERN",
    "STATUS_TTL_SECONDS",
    "Keys",
    "check_spec_id",
    "client_name",
    "cluster_prefix",
    "expired_channel",
)

HEARTBEAT_SECONDS = 5.0
STATUS_TTL_SECONDS = 3 * HEARTBEAT_SECONDS
PROCESS_FIELD = "_process"
SPEC_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_NAME_UNSAFE = re.compile(r"[^!-~]")


def client_name(name: str) -> str:
    """Return name as Redis accepts it for CLIENT SETNAME (unsafe characters as ``_``)."""
    return _NAME_UNSAFE.sub("_", name)


def cluster_prefix(prefix: str) -> str:
    """Return prefix as a Redis Cluster hash tag (``{diagnose}``), unless it holds one."""
    head, brace, tail = prefix.partition("{")
    if brace and "}" in tail and tail.index("}") > 0:
        return prefix
    return "{" + prefix + "}"


class ExceptionKeys(NamedTuple):
    """The keys of one exception spec's aggregates (``protocol.exceptions`` has their
    fields): a sorted set of counts by fingerprint, a hash of what is known of each, a
    hash of each fingerprint's count per process, and a hash of the captures."""

    counts: str
    about: str
    seen: str
    captures: str


class Keys:
    """Name the Redis keys and channels under one prefix.

    With cluster set, the prefix is made a hash tag (see cluster_prefix) so that every key and
    the channel share one slot, and events travel by sharded pub/sub (``sharded``).
    """

    def __init__(self, prefix: str = "diagnose", *, cluster: bool = False) -> None:
        self.sharded = cluster
        prefix = cluster_prefix(prefix) if cluster else prefix
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.processes = f"{prefix}:processes"
        self.version = f"{prefix}:version"
        self.ids = f"{prefix}:ids"
        self.spec_prefix = f"{prefix}:spec:"
        self.status_prefix = f"{prefix}:status:"
        self.claim_prefix = f"{prefix}:claim:"
        self.output = f"{prefix}:output"
        self.audit = f"{prefix}:audit"
        self.pending = f"{prefix}:pending"
        self.pending_prefix = f"{prefix}:pending:"
        self.aggregates_prefix = f"{prefix}:agg:"

    def spec(self, spec_id: str) -> str:
        """Return the key of one spec."""
        return self.spec_prefix + spec_id

    def pending_spec(self, spec_id: str) -> str:
        """Return the key of a spec held pending approval (a hash: spec, who, key, at)."""
        return self.pending_prefix + spec_id

    def status(self, process_id: str) -> str:
        """Return the status hash key of one process."""
        return self.status_prefix + process_id

    def claim(self, process_id: str) -> str:
        """Return the key that holds the claim on a process id."""
        return self.claim_prefix + process_id

    def exceptions(self, spec_id: str) -> ExceptionKeys:
        """Return the keys of an exception spec's aggregates (they go with the spec)."""
        base = f"{self.prefix}:exc:{spec_id}:"
        return ExceptionKeys(base + "counts", base + "about", base + "seen", base + "captures")

    def connection_name(self, process_id: str) -> str:
        """Return the name a process's subscriber gives its connections (CLIENT SETNAME)."""
        return client_name(f"{self.prefix}:{process_id}")

    def spec_id(self, key: str | bytes) -> str | None:
        """Return the spec id a key names, or None if it is not a spec key."""
        return _after(self.spec_prefix, key)

    def process_id(self, key: str | bytes) -> str | None:
        """Return the process id a status key names, or None if it is not a status key."""
        return _after(self.status_prefix, key)

    def aggregates(self, spec_id: str) -> str:
        """Return the key of the set that lists the aggregate keys of one spec (the
        processes' statistics), removed with it."""
        return self.aggregates_prefix + spec_id

    def aggregate(self, kind: str, spec_id: str, process_id: str, incarnation: str) -> str:
        """Return the key of one incarnation's aggregate of one spec in one process:
        ``P:KIND:ID@PROCESS#INCARNATION`` (a spec id holds no ``@``)."""
        return f"{self.prefix}:{kind}:{spec_id}@{process_id}#{incarnation}"

    def __repr__(self) -> str:
        cluster = ", cluster=True" if self.sharded else ""
        return f"Keys({self.prefix!r}{cluster})"


def expired_channel(db: int) -> str:
    """Return the channel on which Redis announces keys of database db that expired."""
    return f"__keyevent@{db}__:expired"


def _after(prefix: str, key: str | bytes) -> str | None:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    return key[len(prefix) :] if key.startswith(prefix) else None


def check_spec_id(spec_id: object) -> str:
    """Return a valid spec id or raise SpecIdError (a ValueError) naming the problem."""
    if not isinstance(spec_id, str) or not SPEC_ID_PATTERN.match(spec_id):
        raise SpecIdError(
            f"spec id must be 1-200 characters of letters, digits and _.:- , not {spec_id!r}"
        )
    return spec_id
