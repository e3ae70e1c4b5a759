"""`coordinator serve` without a Redis: its log format, and its refusal to start."""

from __future__ import annotations

import datetime as _dt

import pytest
import redis

from coordinator._context import Settings
from coordinator.commands.serve import FleetService, ServeOptions


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio, the backend `coordinator serve` uses."""
    return "asyncio"


@pytest.mark.anyio
async def test_service_refuses_to_start_without_redis() -> None:
    """The service raises ConnectionError at once when Redis cannot be reached."""
    service = FleetService(Settings(redis_url="redis://127.0.0.1:1/0"), ServeOptions())
    with pytest.raises(redis.ConnectionError):
        await service.run(handle_signals=False)


def test_serve_logs_times_in_utc_with_a_z() -> None:
    """serve's log lines carry the record's time in UTC, ISO-8601 with a Z."""
    import logging

    from coordinator.commands.serve import UTCFormatter

    record = logging.LogRecord("coordinator.serve", logging.INFO, __file__, 1, "hi", None, None)
    record.created = _dt.datetime(2026, 11, 24, 19, 36, 20, 646000, tzinfo=_dt.UTC).timestamp()
    record.msecs = 646.0
    line = UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    assert line == "2026-11-24T19:36:20.646Z INFO coordinator.serve: hi"
