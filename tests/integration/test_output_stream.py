"""The output stream end to end: real worker processes, a real Redis, `coordinator tail -f`."""

# redis-py types xrange() as Optional and its fields as bytes | str | None, whatever the
# connection decodes: the stub, not these tests, is what these codes silence.
# mypy: disable-error-code="index, union-attr, arg-type"

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import support
from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from diagnose_redis.protocol import decode_output
from support.cli import COORDINATOR
from support.waiting import wait_for

WORKER = Path(support.__file__).with_name("output_worker.py")
TARGET = "output_worker.work"


def spec(itype: str = "log", value: str | None = "(x, password, result)", **inst: Any) -> dict:
    """Return a spec on the worker's target."""
    instrument = {"type": itype, "name": "n", "value": value, **inst}
    return {"target": TARGET, "instrument": instrument, "lifespan": 5}


class Worker:
    """An output_worker.py subprocess, its stdout collected line by line."""

    def __init__(self, url: str, prefix: str, pid: str, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--url", url, "--prefix", prefix, "--process-id", pid]
            + list(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.process_id = pid

    def ready(self) -> Worker:
        """Wait until the worker has started its subscriber."""
        assert self.wait_line("ready "), "the worker did not start"
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, start: str, timeout: float = 10.0, after: int = 0) -> str | None:
        """Return the first line from index after that starts with start, waiting for it."""
        return wait_for(
            lambda: next((x for x in self.lines[after:] if x.startswith(start)), None), timeout
        )

    def ask(self, command: str, answer: str, timeout: float = 10.0) -> str:
        """Send a command and return the line that answers it."""
        mark = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.wait_line(answer, timeout, after=mark)
        assert line, f"no {answer!r} after {command!r}: {self.lines[mark:]}"
        return line

    def outbox(self) -> dict[str, Any]:
        """Return the worker's outbox and outflow counters."""
        return json.loads(self.ask("outbox", "outbox ").split(" ", 1)[1])

    def close(self) -> str:
        """Stop the worker cleanly; return its stderr."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        try:
            return self.proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[1]


class Fleet:
    """Workers under one prefix, and the store to publish to them."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)
        self.store = SpecStore(self.client, prefix)
        self.workers: list[Worker] = []

    def start(self, count: int, *args: str, envs: list[dict] | None = None) -> list[Worker]:
        """Start count workers at once (envs: each one's extra environment)."""
        envs = envs or [{}] * count
        new = [
            Worker(self.url, self.prefix, f"w{len(self.workers) + i}", *args, env=envs[i])
            for i in range(count)
        ]
        self.workers += new
        return [w.ready() for w in new]

    def publish(self, spec_id: str, body: dict, workers: list[Worker] | None = None) -> None:
        """Publish a spec and wait until every worker applied it."""
        body = {**body, "lastmodified": dt.datetime.now(dt.UTC)}
        self.store.put(spec_id, body)
        pids = [w.process_id for w in workers or self.workers]

        def applied() -> bool:
            report = self.store.status(spec_id)
            return all(
                (report.get(p, {}).get(spec_id) or {}).get("lm") is not None
                and report[p][spec_id]["err"] is None
                for p in pids
            )

        assert wait_for(applied, 10), self.store.status(spec_id)

    def entries(self, spec_id: str | None = None) -> list[dict[str, Any]]:
        """Return the output stream's entries (of one spec), oldest first."""
        raw = self.client.xrange(f"{self.prefix}:output")
        found = [decode_output(i, f) for i, f in raw]
        return [e for e in found if spec_id is None or e["spec"] == spec_id]

    def close(self) -> list[str]:
        errors = [w.close() for w in self.workers]
        self.client.close()
        return errors


@pytest.fixture
def fleet(redis_url: str, prefix: str) -> Iterator[Fleet]:
    f = Fleet(redis_url, prefix)
    try:
        yield f
    finally:
        f.close()


def tail_follow(url: str, prefix: str, *args: str) -> tuple[subprocess.Popen, list]:
    """Start `coordinator tail -f --json`; return it and the (arrival time, entry) it prints."""
    proc = subprocess.Popen(
        [COORDINATOR, "--redis-url", url, "--prefix", prefix, "tail", "-f", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    seen: list[tuple[float, dict]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append((time.monotonic(), json.loads(line)))

    threading.Thread(target=read, daemon=True).start()
    client = redis.Redis.from_url(url)
    # Following once its XREAD blocks on the server.
    assert wait_for(lambda: any(c.get("cmd") == "xread" for c in client.client_list()), 10)
    client.close()
    return proc, seen


def test_values_of_three_workers_show_in_tail_redacted(fleet: Fleet) -> None:
    """A log probe on 3 workers: each value shows in `tail -f`, secrets redacted; Ctrl-C
    ends tail with exit 0."""
    fleet.start(3)
    fleet.publish("vals", spec())
    proc, seen = tail_follow(fleet.url, fleet.prefix)
    try:
        for worker in fleet.workers:
            worker.ask("call 7", "called")
        assert wait_for(lambda: len(seen) >= 3, 15), seen
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Error" not in err and "Traceback" not in err
    assert sorted(entry["process"] for _, entry in seen) == ["w0", "w1", "w2"]
    for _, entry in seen:
        assert entry["spec"] == "vals" and entry["type"] == "log"
        assert entry["value"] == "(7, <redacted>, {'x': 14, 'api_key': <redacted>})"
    for worker in fleet.workers:
        assert "Probe (n) = (7, <redacted>, {'x': 14, 'api_key': <redacted>})" in worker.lines


def test_nothing_is_lost_under_the_rate_limit_and_snapshots_are_redacted(fleet: Fleet) -> None:
    """80 calls under a log probe's 100/s: all 80 values reach the stream, in order; the
    snapshot of a call holds its arguments with the secret redacted."""
    (worker,) = fleet.start(1)
    fleet.publish("burst", spec(value="x"))
    fleet.publish("snap", spec("snapshot", None, event="call"))
    worker.ask("burst 80", "burst")
    assert wait_for(lambda: len(fleet.entries("burst")) >= 80, 5)
    assert [e["value"] for e in fleet.entries("burst")] == [str(x) for x in range(80)]
    (snap,) = fleet.entries("snap")  # the snapshot's default rate: 1 a second
    assert snap["type"] == "snapshot"
    assert json.loads(snap["value"]) == {"x": 0, "password": "<redacted>"}
    assert "hunter2" not in json.dumps(fleet.entries())
    assert worker.outbox()["dropped"] == {}


def test_a_runtime_error_goes_to_the_stream_once(fleet: Fleet) -> None:
    """An instrument that raises adds one entry of type error, however often it is called."""
    (worker,) = fleet.start(1)
    fleet.publish("broken", spec(value="x / 0"))
    worker.ask("burst 5", "burst")
    assert wait_for(lambda: fleet.entries("broken"), 5)
    worker.ask("burst 5", "burst")
    worker.outbox()  # a round trip: anything still to send has been taken by now
    assert wait_for(lambda: worker.outbox()["held"] == 0, 5)
    (entry,) = fleet.entries("broken")
    assert entry["type"] == "error" and entry["value"].startswith("ZeroDivisionError")


def test_diagnose_output_chooses_stdout_and_the_stream(fleet: Fleet) -> None:
    """DIAGNOSE_OUTPUT=redis, stdout or both: where a log probe's lines go."""
    outputs = ["redis", "stdout", "stdout,redis"]
    workers = fleet.start(3, envs=[{"DIAGNOSE_OUTPUT": o} for o in outputs])
    fleet.publish("where", spec(value="x"))
    for worker in workers:
        worker.ask("call 3", "called")
    for worker in workers:

        def drained(w: Any = worker) -> bool:
            return bool(w.outbox()["held"] == 0)

        assert wait_for(drained, 5)
    # w0 and w2 send to the stream; w1 never does.
    assert wait_for(lambda: len(fleet.entries("where")) >= 2, 5)
    worker.ask("outbox", "outbox")
    assert sorted(e["process"] for e in fleet.entries("where")) == ["w0", "w2"]
    assert ["Probe (n) = 3" in w.lines for w in workers] == [False, True, True]


def test_redis_down_for_5s_costs_the_workers_nothing_and_at_most_the_buffer(
    private_redis: RedisServer, prefix: str
) -> None:
    """With Redis stopped for 5 s, a worker calling its probe 100 times a second runs on
    (what a call costs then: bench/output_overhead.py); afterwards the stream holds what the
    bounded buffer kept, and every other entry is counted as dropped."""
    fleet = Fleet(private_redis.url, prefix)
    try:
        (worker,) = fleet.start(1, "--outbox", "50")
        fleet.publish("outage", spec(value="x", custom={"rate": 1000}))
        private_redis.stop()
        ran = worker.ask("run 100 5", "ran ", timeout=20).split()
        count = int(ran[1])
        # More calls than the buffer holds, so that some are dropped and counted.
        assert count > 2 * 50, ran
        private_redis.start()
        fleet.client = redis.Redis.from_url(private_redis.url)

        def settled() -> dict[str, Any] | None:
            info = worker.outbox()
            return info if info["held"] == 0 and info["sent"] > 0 else None

        info = wait_for(settled, 15)
        assert info, worker.outbox()
        kept = len(fleet.entries("outage"))
        dropped = info["dropped"].get("outage", 0)
        assert 0 < kept <= 2 * 50  # the buffer, and the batch it had taken when Redis went
        assert kept + dropped == count
        assert worker.ask("call 1", "called")
    finally:
        errors = fleet.close()
    assert all("Traceback" not in e for e in errors)
