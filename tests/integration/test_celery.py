"""Celery's prefork pool for real: the subscriber in each pool child, Redis as the broker.

The worker runs ``examples/shop/tasks.py`` with ``-P prefork -c 2 --max-tasks-per-child 1``
and ``DIAGNOSE_PROCESS_ID=celery-1`` for the whole pool, as a user would set it: every task
recycles its child, which Celery ends with ``os._exit``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from diagnose_redis import SpecStore
from support.app_servers import (
    applied_by,
    children,
    coordinator,
    server_and_store,
    server_env,
    stop,
    tool,
    wait_until,
    workers,
)

TASKS = 6


class CeleryWorker:
    """A Celery prefork worker of the shop app, its log in a file."""

    def __init__(self, redis_url: str, prefix: str, log: Path) -> None:
        self.log = log
        self.env = server_env(redis_url, prefix, DIAGNOSE_PROCESS_ID="celery-1")
        command = [
            tool("celery"), "-A", "shop.tasks", "worker", "-P", "prefork", "-c", "2",
            "--max-tasks-per-child", "1", "--loglevel=INFO",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def send(self, count: int) -> None:
        """Queue count price_cart tasks from another process, as an application would."""
        code = (
            "from shop.tasks import price_cart\n"
            f"for _ in range({count}): price_cart.delay({{'apple': 2, 'milk': 1}})\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=30)

    def output(self) -> str:
        """Return what the worker and its children logged so far."""
        return self.log.read_text(errors="replace")


@pytest.fixture
def worker(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[tuple[CeleryWorker, SpecStore]]:
    """A Celery worker on the suite's Redis (as broker too), and a store on its fleet."""
    log = tmp_path / "celery.log"
    with server_and_store(redis_url, prefix, lambda: CeleryWorker(redis_url, prefix, log)) as pair:
        yield pair


def steady(condition: Callable[[], object], period: float) -> Callable[[], bool]:
    """Return a check that holds once condition has given one true value for period s."""
    seen: list[Any] = [None, 0.0]  # the last value, and when it was first seen

    def check() -> bool:
        value, now = condition(), time.monotonic()
        if not value or value != seen[0]:
            seen[:] = [value, now]
            return False
        return now - float(seen[1]) >= period

    return check


def child_pids(store: SpecStore) -> set[int]:
    """Return the pids the live processes of the fleet report."""
    # A child that stopped between the two reads of workers() has no info: skip it.
    return {int(info["pid"]) for info in workers(store).values() if "pid" in info}


def test_celery_prefork_children_apply_report_and_leave(
    worker: tuple[CeleryWorker, SpecStore], redis_url: str, prefix: str
) -> None:
    """Pool children sharing one configured id report as two; a task's probe prints in the
    log; recycled children report the live probe applied and leave the live list at once."""
    celery, store = worker
    main = celery.proc.pid
    wait_until(
        lambda: len(children(main)) == 2 and child_pids(store) == children(main),
        30,
        "2 pool children online",
        celery.output,
    )
    ids = set(workers(store))
    assert "celery-1" in ids and len(ids) == 2, ids
    assert all(re.fullmatch(r"celery-1(:\d+)?", i) for i in ids)

    published = coordinator(
        redis_url, prefix, "publish", "c1", "-t", "shop.pricing.total", "--value", "result",
        "--wait", "--timeout", "10",
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert set(re.findall(r"^(celery-1\S*)\s+c1\s+applied", published.stderr, re.M)) == ids
    c1 = store.get("c1")
    assert c1 is not None
    lastmodified = c1["lastmodified"]

    celery.send(TASKS)
    wait_until(lambda: "Probe (c1) = 2.2" in celery.output(), 15, "a probe line in the log")
    # Every task recycles its child. Once all have run, wait for the pool to settle.
    wait_until(
        lambda: len(re.findall(r"Task shop.price_cart\[.*\] succeeded", celery.output())) == TASKS,
        60,
        "every task to run",
    )

    def settled() -> frozenset[int] | None:
        """The pool's children, if both are recycled ones and online."""
        pids = children(main)
        fresh = all(
            dt.datetime.fromisoformat(info["started"]) > lastmodified
            for info in workers(store).values()
            if "started" in info
        )
        return frozenset(pids) if fresh and len(pids) == 2 and child_pids(store) == pids else None

    wait_until(steady(settled, 0.5), 30, "the recycled children online, for 0.5 s")
    wait_until(lambda: applied_by(store, "c1", set(workers(store))), 15, "recycled children apply")
    status = store.status("c1")
    assert all(status[p]["c1"]["err"] is None for p in workers(store))

    # Right after the burst, --wait counts only the live children and every one applies.
    again = coordinator(
        redis_url, prefix, "publish", "c2", "-t", "shop.pricing.unit_price", "--value", "result",
        "--wait", "--timeout", "10",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    listed = coordinator(redis_url, prefix, "processes", "--json")
    assert listed.returncode == 0
    document = json.loads(listed.stdout)
    assert document["count"] == 2
    assert {int(p.rsplit(":", 1)[-1]) for p in document["processes"] if ":" in p} <= children(main)

    assert stop(celery.proc, timeout=15) == 0
    wait_until(lambda: store.fleet() == {}, 5, "no live process left")
