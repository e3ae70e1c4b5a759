"""Wait until every live process has applied a spec, with a progress bar on stderr."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from diagnose._time import to_utc

from ._output import err_console

__all__ = ("ProcessResult", "report_state", "same_time", "wait_for_spec")

POLL_INTERVAL = 0.1
# How often --wait checks that the processes it waits for are still alive.
ALIVE_INTERVAL = 0.5


@dataclass(frozen=True)
class ProcessResult:
    """What one process reported for one spec."""

    process: str
    state: str
    lm: _dt.datetime | None
    err: str | None
    at: _dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-friendly map."""
        return {"state": self.state, "lm": self.lm, "err": self.err, "at": self.at}


def same_time(a: _dt.datetime | None, b: _dt.datetime | None) -> bool:
    """Tell whether two lastmodified values are the same instant (to the millisecond)."""
    if a is None or b is None:
        return False
    return abs((to_utc(a) - to_utc(b)).total_seconds()) < 0.001


def report_state(report: Any, lastmodified: _dt.datetime | None) -> str:
    """Classify a process's report on a spec: applied, error, stale or pending."""
    if not isinstance(report, dict):
        return "pending"
    lm = report.get("lm")
    behind = lm is not None and lastmodified is not None and to_utc(lm) < to_utc(lastmodified)
    if behind and not same_time(lm, lastmodified):
        return "stale"
    if report.get("err"):
        return "error"
    if lm is None and lastmodified is not None:
        return "pending"
    return "applied"


def _results(
    store: Any, spec_id: str, processes: list[str], lastmodified: _dt.datetime
) -> list[ProcessResult]:
    status = store.status(spec_id)
    results = []
    for process in processes:
        report = (status.get(process) or {}).get(spec_id)
        state = report_state(report, lastmodified)
        if isinstance(report, dict):
            result = ProcessResult(
                process, state, report.get("lm"), report.get("err"), report.get("at")
            )
        else:
            result = ProcessResult(process, state, None, None, None)
        results.append(result)
    return results


def wait_for_spec(
    store: Any,
    spec_id: str,
    lastmodified: _dt.datetime,
    processes: list[str],
    timeout: float,
    *,
    show_progress: bool = True,
    alive: Callable[[], set[str]] | None = None,
) -> tuple[list[ProcessResult], bool]:
    """Poll status until each process reports this version of the spec, or time runs out.

    alive, if given, returns the processes still alive: one that is gone (killed, say) is
    no longer waited for, and left out of the results. Return the last results and whether
    every process answered in time.
    """
    deadline = time.monotonic() + timeout
    processes = list(processes)
    checked = time.monotonic()
    progress = Progress(
        TextColumn("waiting for {task.fields[spec]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("processes"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("wait", total=len(processes), spec=spec_id)
        while True:
            if alive is not None and time.monotonic() - checked >= ALIVE_INTERVAL:
                checked = time.monotonic()
                living = alive()
                processes = [p for p in processes if p in living]
                progress.update(task, total=len(processes))
            results = _results(store, spec_id, processes, lastmodified)
            done = sum(r.state in ("applied", "error") for r in results)
            progress.update(task, completed=done)
            if done == len(processes):
                return results, True
            if time.monotonic() >= deadline:
                return results, False
            time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
