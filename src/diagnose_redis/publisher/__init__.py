"""The publishing side: put and remove specs, read what the fleet reports (``SpecStore``),
read thousands of status hashes at once (``census``), hold specs for a second key's approval
(``approvals``), write who did what to the audit stream (``audit``), read what exception
specs counted (``exceptions``) and the fleet's statistics of a spec (``aggregates``)."""

from __future__ import annotations

from diagnose_redis.publisher.aggregates import (
    DistinctPart,
    Incarnation,
    count_distinct,
    drop_aggregates,
    read_incarnations,
)
from diagnose_redis.publisher.approvals import (
    Approved,
    PendingSpec,
    approve,
    discard,
    hold,
    read_pending,
)
from diagnose_redis.publisher.audit import acl_user, actor, describe_spec, read_audit
from diagnose_redis.publisher.census import CensusRow, census_rows, read_fields, read_hashes
from diagnose_redis.publisher.exceptions import (
    ExceptionSummary,
    find_fingerprint,
    read_captures,
    read_exceptions,
)
from diagnose_redis.publisher.store import ProcessEntry, SpecStore, read_specs

__all__ = (
    "Approved",
    "CensusRow",
    "DistinctPart",
    "ExceptionSummary",
    "Incarnation",
    "PendingSpec",
    "ProcessEntry",
    "SpecStore",
    "acl_user",
    "actor",
    "approve",
    "census_rows",
    "count_distinct",
    "describe_spec",
    "discard",
    "drop_aggregates",
    "find_fingerprint",
    "hold",
    "read_audit",
    "read_captures",
    "read_exceptions",
    "read_fields",
    "read_hashes",
    "read_incarnations",
    "read_pending",
    "read_specs",
)
