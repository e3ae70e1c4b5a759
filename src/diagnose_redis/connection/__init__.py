"""Connections: every part of the project reaches Redis through ``connect()`` (URLs,
Sentinel, Cluster and TLS); ``slot`` holds the connections to one Cluster slot's primary and
``deferred`` the replies read later.

Importing this package does not import redis-py: ``connect()`` does, on first use.
"""

from __future__ import annotations

from diagnose_redis.connection.urls import (
    CLUSTER_SCHEMES,
    SCHEMES,
    SENTINEL_SCHEMES,
    Topology,
    connect,
    connect_async,
    database,
    is_cluster,
    parse_topology,
    pubsub,
    redact_url,
)

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
