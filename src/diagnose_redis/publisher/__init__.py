"""The publishing side: put and remove specs, read what the fleet reports (``SpecStore``),
read thousands of status hashes at once (``census``), and what exception specs counted
(``exceptions``)."""

from __future__ import annotations

from diagnose_redis.publisher.census import CensusRow, census_rows, read_fields, read_hashes
from diagnose_redis.publisher.exceptions import (
    ExceptionSummary,
    find_fingerprint,
    read_captures,
    read_exceptions,
)
from diagnose_redis.publisher.store import ProcessEntry, SpecStore, read_specs

__all__ = (
    "CensusRow",
    "ExceptionSummary",
    "ProcessEntry",
    "SpecStore",
    "census_rows",
    "find_fingerprint",
    "read_captures",
    "read_exceptions",
    "read_fields",
    "read_hashes",
    "read_specs",
)
