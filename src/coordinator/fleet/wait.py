"""Wait until every live process has applied a spec, with a progress bar on a terminal."""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections.abc import Callable
from typing import Any

from coordinator.fleet.state import ProcessResult, report_state, result_of, same_time

__all__ = ("ProcessResult", "poll_results", "report_state", "same_time", "wait_for_spec")

POLL_INTERVAL = 0.1
# How often --wait checks that the processes it waits for are still alive.
ALIVE_INTERVAL = 0.5


def poll_results(
    store: Any, spec_id: str, processes: list[str], lastmodified: _dt.datetime
) -> list[ProcessResult]:
    """Read what each of processes reports for this version of a spec."""
    status = store.status(spec_id)
    return [
        result_of(process, spec_id, (status.get(process) or {}).get(spec_id), lastmodified)
        for process in processes
    ]


def wait_for_spec(
    store: Any,
    spec_id: str,
    lastmodified: _dt.datetime,
    processes: list[str],
    timeout: float,
    *,
    show_progress: bool = True,
    seen: dict[str, list[ProcessResult]] | None = None,
    alive: Callable[[], set[str]] | None = None,
) -> tuple[list[ProcessResult], bool]:
    """Poll status until each process reports this version of the spec, or time runs out.

    alive, if given, returns the processes still alive: one that is gone (killed, say) is
    no longer waited for, and left out of the results.

    Return the last results and whether every process answered in time. The progress bar
    shows only when stderr is a terminal, so that pipes and log files get no stray lines.
    seen, if given, gets the latest results under spec_id after every poll, so that an
    interrupted wait can still say what it saw.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    processes = list(processes)
    checked = time.monotonic()
    # rich is imported here, not for every command: it is a tenth of a second of start-up.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err_console = Console(stderr=True)
    progress = Progress(
        TextColumn("waiting for {task.fields[spec]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("processes"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not (show_progress and err_console.is_terminal),
    )
    with progress:
        task = progress.add_task("wait", total=len(processes), spec=spec_id)
        while True:
            if alive is not None and time.monotonic() - checked >= ALIVE_INTERVAL:
                checked = time.monotonic()
                living = alive()
                processes = [p for p in processes if p in living]
                progress.update(task, total=len(processes))
            results = poll_results(store, spec_id, processes, lastmodified)
            if seen is not None:
                seen[spec_id] = results
            done = sum(r.done for r in results)
            progress.update(task, completed=done)
            if done == len(processes):
                return results, True
            if time.monotonic() >= deadline:
                return results, False
            pause.wait(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
