"""Measure what a process keeps: the memory traced across repeated cycles of work."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

__all__ = ("growth_after_warm_up",)


def growth_after_warm_up(cycle: Callable[[int], None], warm_up: int, measured: int) -> int:
    """Run cycle(i) warm_up times, then measured times; return the traced growth between."""
    tracemalloc.start()
    try:
        for i in range(warm_up):
            cycle(i)
        gc.collect()
        before = tracemalloc.take_snapshot()
        for i in range(warm_up, warm_up + measured):
            cycle(i)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))
