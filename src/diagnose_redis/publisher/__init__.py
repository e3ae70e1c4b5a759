"""The publishing side: put and remove specs, read what the fleet reports (``SpecStore``),
read thousands of status hashes at once (``census``), and the fleet's statistics of a spec
(``aggregates``)."""

from __future__ import annotations

from diagnose_redis.publisher.aggregates import (
    DistinctPart,
    Incarnation,
    count_distinct,
    drop_aggregates,
    read_incarnations,
)
from diagnose_redis.publisher.census import CensusRow, census_rows, read_fields, read_hashes
from diagnose_redis.publisher.store import ProcessEntry, SpecStore, read_specs

__all__ = (
    "CensusRow",
    "DistinctPart",
    "Incarnation",
    "ProcessEntry",
    "SpecStore",
    "census_rows",
    "count_distinct",
    "drop_aggregates",
    "read_fields",
    "read_hashes",
    "read_incarnations",
    "read_specs",
)
