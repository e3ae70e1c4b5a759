"""`coordinator serve`: expired specs become removals, dead processes go, signals stop it."""

from __future__ import annotations

import datetime as _dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import anyio
import pytest
import redis

from coordinator._context import Settings
from coordinator.commands.serve import FleetService, ServeOptions
from diagnose_redis import Keys, SpecStore
from support.waiting import wait_for


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio, the backend `coordinator serve` uses."""
    return "asyncio"


def _spec(lifespan: float | None) -> dict[str, object]:
    return {
        "target": "shop.pricing.total",
        "instrument": {"type": "log", "name": "t", "value": "result"},
        "lifespan": lifespan,
        "lastmodified": _dt.datetime.now(_dt.UTC),
    }


async def _eventually(condition: Callable[[], bool], timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


async def _run_until(service: FleetService, condition: Callable[[], bool]) -> None:
    """Run the service until condition holds (failing after 15 s), then cancel it."""
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: service.run(handle_signals=False, task_status=task_status)
        )
        await _eventually(condition, 15)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("sweep_interval", [0.2, 60.0], ids=["sweep", "expired-event"])
@pytest.mark.parametrize("where", ["standalone", "cluster"])
async def test_expired_spec_becomes_a_published_removal(
    request: pytest.FixtureRequest, where: str, prefix: str, sweep_interval: float
) -> None:
    """A spec whose key expires is removed and announced, by the sweep or the expired event
    (in a cluster, the event of the node that owns the fleet's slot)."""
    if where == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    else:
        url = request.getfixturevalue("redis_url")
    settings = Settings(redis_url=url, prefix=prefix)
    store = settings.store()
    store.put("short", _spec(0.01))
    service = FleetService(settings, ServeOptions(sweep_interval=sweep_interval))
    await _run_until(service, lambda: "short" in service.removed)
    assert store.specs() == {}
    assert not settings.client().sismember(store.keys.ids, "short")
    if sweep_interval > 1:
        assert service.expired_events >= 1


@pytest.mark.anyio
async def test_removal_reaches_subscribers_on_the_events_channel(
    redis_url: str, prefix: str
) -> None:
    """The removal of an expired spec is published on the events channel."""
    settings = Settings(redis_url=redis_url, prefix=prefix)
    store = settings.store()
    pubsub = settings.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys(prefix).events)
    store.put("short", _spec(0.01))
    service = FleetService(settings, ServeOptions(sweep_interval=0.2, version_interval=60))
    await _run_until(service, lambda: "short" in service.removed)
    messages: list[bytes] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(b"delete" in m for m in messages):
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            messages.append(message["data"])
    pubsub.close()
    assert any(b"delete" in data for data in messages)


@pytest.mark.anyio
async def test_dead_processes_are_pruned_and_live_ones_kept(redis_url: str, prefix: str) -> None:
    """A process whose heartbeat is older than max_age is pruned; a fresh one is kept."""
    settings = Settings(redis_url=redis_url, prefix=prefix)
    client = settings.client()
    now = time.time()
    client.zadd(Keys(prefix).processes, {"dead-1": now - 120, "alive-1": now})
    service = FleetService(settings, ServeOptions(prune_interval=0.1, max_age=30))
    await _run_until(service, lambda: "dead-1" in service.pruned)
    assert set(settings.store().processes(max_age=3600)) == {"alive-1"}


@pytest.mark.anyio
async def test_version_is_republished_periodically(redis_url: str, prefix: str) -> None:
    """The service re-publishes the version so subscribers can notice a gap."""
    settings = Settings(redis_url=redis_url, prefix=prefix)
    pubsub = settings.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys(prefix).events)
    service = FleetService(settings, ServeOptions(version_interval=0.1))
    received: list[bytes] = []

    def poll() -> bool:
        message = pubsub.get_message(timeout=0.01)
        if message is not None:
            received.append(message["data"])
        return len(received) >= 2

    await _run_until(service, poll)
    pubsub.close()
    assert all(b"version" in data for data in received)


@pytest.mark.anyio
async def test_expired_listener_gives_up_on_a_silent_server_and_says_so(
    silent_server, caplog: pytest.LogCaptureFixture
) -> None:
    """serve's expired-key listener gives up on a server that never answers (its read times
    out) and says it lost Redis, instead of waiting for ever."""
    service = FleetService(Settings(redis_url=silent_server.url, prefix="p"), ServeOptions())
    with anyio.move_on_after(30), caplog.at_level("WARNING", logger="coordinator.serve"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(service._listen_expired)
            await _eventually(lambda: "lost Redis" in caplog.text, 20)
            tg.cancel_scope.cancel()
    assert "lost Redis" in caplog.text


def _start_serve(redis_url: str, prefix: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DIAGNOSE_REDIS_URL": redis_url, "DIAGNOSE_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator", "serve", "--sweep-interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_serve_subprocess_stops_cleanly_on_signal(
    redis_url: str, prefix: str, signum: signal.Signals
) -> None:
    """A real `coordinator serve` removes an expired spec, then exits 0 promptly on a signal."""
    store = SpecStore(redis.Redis.from_url(redis_url), prefix=prefix)
    proc = _start_serve(redis_url, prefix)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line
        store.put("short", _spec(0.01))
        removed = wait_for(lambda: not store.client.sismember(Keys(prefix).ids, "short"), 15)
        assert removed, "serve did not remove the expired spec"
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=15)
        stderr = line + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "published removal of short" in stderr
    assert "stopped" in stderr
    assert "Traceback" not in stderr
    assert "" not in stderr.splitlines()
    for log_line in stderr.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ ", log_line), log_line


def test_serve_subprocess_exits_4_without_redis(prefix: str) -> None:
    """A real `coordinator serve` exits 4 with one line when Redis is unreachable."""
    proc = _start_serve("redis://127.0.0.1:1/0", prefix)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 4
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: Redis unreachable")
