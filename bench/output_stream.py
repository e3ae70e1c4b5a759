"""Measure the output stream's throughput: N worker processes into one Redis, R values/s each.

Run: python bench/output_stream.py [--workers 100] [--rate 100] [--seconds 10]

Starts a private redis-server and N ``tests/support/output_worker.py`` processes
(DIAGNOSE_OUTPUT=redis, the stream uncapped for the run), publishes a log probe on their
target, has each call it R times a second for S seconds, and prints: the entries sent and
received (and dropped by a full outbox), the stream's rate, the delay from an entry's ``at``
(when the value was emitted) to its stream ID (when Redis added it), the XADD round trips,
and Redis's CPU.

The workers run without the evaluation budget (``--no-budget``): a hundred processes on two
cores are preempted in the middle of evaluations, and the budget, which measures wall time,
would disable most probes within seconds; this bench is about the stream.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coordinator.embedded import RedisServer  # noqa: E402
from diagnose_redis import SpecStore  # noqa: E402
from diagnose_redis.protocol import decode_output  # noqa: E402

WORKER = ROOT / "tests" / "support" / "output_worker.py"
PREFIX = "bench"


class Worker:
    """An output_worker.py process and the lines it prints."""

    def __init__(self, url: str, index: int) -> None:
        env = {**os.environ, "DIAGNOSE_OUTPUT": "redis", "DIAGNOSE_OUTPUT_MAXLEN": "10000000"}
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--url", url, "--prefix", PREFIX]
            + ["--process-id", f"w{index}", "--no-budget"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self, start: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(start):
                    self.lines.remove(line)
                    return line
            time.sleep(0.05)
        raise TimeoutError(f"no {start!r} from a worker")


def cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    opts = parser.parse_args()
    server = RedisServer().start()
    workers: list[Worker] = []
    try:
        client = redis.Redis.from_url(server.url)
        # Started ten at a time, so that a busy machine does not time their starts out.
        for i in range(opts.workers):
            workers.append(Worker(server.url, i))
            if len(workers) % 10 == 0 or i == opts.workers - 1:
                for w in workers[-10:]:
                    w.answer("ready", timeout=180)
        store = SpecStore(client, PREFIX)
        spec = {
            "target": "output_worker.work",
            "instrument": {"type": "log", "name": "v", "value": "x", "custom": {"rate": 1000}},
            "lifespan": 10,
            "lastmodified": dt.datetime.now(dt.UTC),
        }
        store.put("v", spec)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = store.status("v")
            if sum(1 for r in report.values() if "v" in r) >= opts.workers:
                break
            time.sleep(0.2)
        client.config_resetstat()
        cpu0, t0 = cpu_seconds(client), time.monotonic()
        for w in workers:
            w.send(f"run {opts.rate} {opts.seconds}")
        counts = [int(w.answer("ran ").split()[1]) for w in workers]
        sent = sum(counts)
        key = f"{PREFIX}:output"
        deadline = time.monotonic() + 30
        while client.xlen(key) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(client) - cpu0
        for w in workers:
            w.send("outbox")
        infos = [json.loads(w.answer("outbox ").split(" ", 1)[1]) for w in workers]
        dropped = sum(sum(i["dropped"].values()) for i in infos)
        received = client.xlen(key)
        delays = []
        for entry_id, fields in client.xrange(key, count=received):
            entry = decode_output(entry_id, fields)
            at = dt.datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
            delays.append(int(entry["id"].split("-")[0]) / 1000 - at)
        delays.sort()
        stats = client.info("commandstats").get("cmdstat_xadd", {})
        print(f"{opts.workers} workers x {opts.rate:g}/s for {opts.seconds:g}s")
        print(f"values emitted {sent}, in the stream {received}, dropped (outbox full) {dropped}")
        print(f"stream rate {received / opts.seconds:.0f} entries/s")
        print(
            f"emit-to-stream delay p50 {statistics.median(delays) * 1000:.0f} ms, "
            f"p99 {delays[int(len(delays) * 0.99)] * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
        )
        print(
            f"XADD calls {stats.get('calls')}, {stats.get('usec_per_call')} us each; "
            f"Redis CPU {cpu:.2f}s over {elapsed:.1f}s ({100 * cpu / elapsed:.0f}% of a core)"
        )
        memory = client.info("memory")["used_memory_human"]
        print(f"Redis memory with {received} entries: {memory}")
    finally:
        for w in workers:
            try:
                w.send("quit")
            except OSError:
                pass
        for w in workers:
            try:
                w.proc.wait(10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        server.cleanup()


if __name__ == "__main__":
    main()
