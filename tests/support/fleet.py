"""Fleets of real worker processes for the integration tests: ``fleet_worker.py`` workers
driven line by line, shop workers logging to files, and what they report in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from diagnose_redis import SpecStore, connect
from diagnose_redis.protocol import PROCESS_FIELD
from support.waiting import wait_for, wait_until

__all__ = (
    "EXAMPLES",
    "TARGET",
    "WORKER",
    "Fleet",
    "Worker",
    "applied_everywhere",
    "gone_everywhere",
    "labelled_workers",
    "log_spec",
    "put_retrying",
    "spec_fields",
)

WORKER = Path(__file__).with_name("fleet_worker.py")
# The worker's target: the script imports itself as fleet_worker.
TARGET = "fleet_worker.work"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def log_spec(name: str, value: str = "result", **extra: Any) -> dict[str, Any]:
    """Return a log instrument spec on the worker's target."""
    return {"target": TARGET, "instrument": {"type": "log", "name": name, "value": value}, **extra}


class Worker:
    """A fleet_worker.py subprocess (or another worker script taking --url and --prefix: the
    exception and stats workers), its stdout collected line by line."""

    def __init__(
        self, url: str, prefix: str, *args: str, script: Path = WORKER, startup: float = 10.0
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--url", url, "--prefix", prefix, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.wait_line("ready ", startup)
        assert ready, f"worker did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
        self.process_id = ready.split(" ", 1)[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, start: str, timeout: float = 10.0, after: int = 0) -> str | None:
        """Return the first output line from index after that starts with start."""
        found = wait_for(
            lambda: next((x for x in self.lines[after:] if x.startswith(start)), None), timeout
        )
        return found

    def call(self, x: int) -> list[str]:
        """Call the target in the worker; return the lines it printed for that call."""
        mark = len(self.lines)
        self.send(f"call {x}")
        assert self.wait_line(f"called {x * 2}", after=mark)
        end = next(i for i in range(mark, len(self.lines)) if self.lines[i].startswith("called"))
        return self.lines[mark:end]

    def send(self, command: str) -> None:
        """Send one command line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> str:
        """Stop the worker cleanly and return what it wrote to stderr."""
        try:
            self.send("quit")
        except (BrokenPipeError, OSError):
            pass
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def applied_everywhere(
    store: SpecStore, spec_id: str, pids: list[str], error: bool = False
) -> bool:
    """Return True if every process in pids reports spec_id at its stored lastmodified
    (with an error if error, else without)."""
    spec = store.get(spec_id)
    if spec is None:
        return False
    report = store.status(spec_id)
    for pid in pids:
        entry = report.get(pid, {}).get(spec_id)
        if not entry or entry["lm"] != spec["lastmodified"] or (entry["err"] is None) == error:
            return False
    return True


def spec_fields(store: SpecStore, process: str) -> set[str]:
    """Return the spec ids a process's status hash holds a field for."""
    raw = store.client.hkeys(store.keys.status(process))
    return {k.decode() if isinstance(k, bytes) else k for k in raw} - {PROCESS_FIELD}


def gone_everywhere(store: SpecStore, spec_id: str, pids: list[str]) -> bool:
    """Return True if no process in pids reports spec_id any more."""
    report = store.status()
    return all(pid in report and spec_id not in report[pid] for pid in pids)


@contextmanager
def labelled_workers(
    url: str, prefix: str, labels: dict[str, str]
) -> Iterator[tuple[SpecStore, dict[str, Worker], dict[str, str]]]:
    """Start one worker per process id in labels, with its labels, and wait until all are
    live; give a store, the workers by id, and a dict that holds, once the block ends and
    every worker is closed, what each one wrote to stderr."""
    workers = {
        pid: Worker(url, prefix, "--process-id", pid, "--labels", text)
        for pid, text in labels.items()
    }
    client = redis.Redis.from_url(url)
    store = SpecStore(client, prefix)
    assert wait_for(lambda: set(labels) <= set(store.processes()), 10)
    errors: dict[str, str] = {}
    try:
        yield store, workers, errors
    finally:
        errors.update({pid: w.close() for pid, w in workers.items()})
        client.close()


def put_retrying(store: SpecStore, spec_id: str, spec: dict[str, Any]) -> None:
    """Publish a spec, trying again for up to 10 s while the topology moves under the store."""

    # A connection that a failover or a slot migration closed fails one command; the next
    # one finds the new primary or owner.
    def attempt() -> bool:
        try:
            store.put(spec_id, spec)
        except redis.RedisError:
            return False
        return True

    assert wait_for(attempt, 10), f"could not publish {spec_id} while the topology moved"


class Fleet:
    """Shop worker processes (``python -m shop.worker``) whose output goes to files."""

    def __init__(self, redis_url: str, prefix: str, logs: Path) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.store = SpecStore(connect(redis_url, prefix=prefix), prefix=prefix)

    def start(self, count: int) -> None:
        """Start count workers and wait until each heartbeats."""
        for n in range(1, count + 1):
            process_id = f"w-{n}"
            env = {
                **os.environ,
                "DIAGNOSE_REDIS_URL": self.redis_url,
                "DIAGNOSE_PREFIX": self.prefix,
                "DIAGNOSE_PROCESS_ID": process_id,
                "PYTHONPATH": str(EXAMPLES),
                "PYTHONUNBUFFERED": "1",
                "SHOP_INTERVAL": "0.05",
            }
            env.pop("DIAGNOSE_SECRET", None)
            with open(self.logs / f"{process_id}.log", "wb") as out:
                self.procs[process_id] = subprocess.Popen(
                    [sys.executable, "-m", "shop.worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        wait_until(lambda: set(self.procs) <= set(self.store.processes()), 20, "heartbeats")

    def output(self, process_id: str) -> str:
        """Return what a worker printed so far."""
        return (self.logs / f"{process_id}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop every worker."""
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.store.client.close()
