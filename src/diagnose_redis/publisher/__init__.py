"""The publishing side: put and remove specs, read what the fleet reports (``SpecStore``),
and read thousands of status hashes at once (``census``)."""

from __future__ import annotations

from diagnose_redis.publisher.census import CensusRow, census_rows, read_fields, read_hashes
from diagnose_redis.publisher.store import ProcessEntry, SpecStore, read_specs

__all__ = (
    "CensusRow",
    "ProcessEntry",
    "SpecStore",
    "census_rows",
    "read_fields",
    "read_hashes",
    "read_specs",
)
