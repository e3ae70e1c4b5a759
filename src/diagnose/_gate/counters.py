"""What one instrument did in a process (fired, dropped, errors), and the state its rate
limit and budget share across the functions it sits on."""

from __future__ import annotations

import math

from diagnose._gate import budget as budgets

__all__ = ("Stats",)


class Stats:
    """What one instrument did in this process: fired, dropped (over its rate), errors;
    and the state its rate limit and budget share across the functions it sits on."""

    __slots__ = (
        "budget",
        "dropped",
        "errors",
        "fired",
        "last_elapsed",
        "last_timed",
        "next_timed",
        "period",
        "ring",
        "slot",
        "spent",
        "timed_fired",
        "window",
    )

    def __init__(self, rate: float | None = None, budget: float | None = None) -> None:
        self.reset(rate, budget)

    def reset(self, rate: float | None = None, budget: float | None = None) -> None:
        """Start afresh (counters, rate limit, budget) in place: the wrapper and the gates
        that hold this object keep counting into it."""
        self.fired = self.dropped = self.errors = 0
        self.set_rate(rate)
        self.set_budget(budget)
        self.timed_fired = 0
        self.last_timed = self.window = budgets.wall_clock()
        self.spent = 0.0
        self.last_elapsed = math.inf

    def set_rate(self, rate: float | None) -> None:
        """Allow at most rate fires per second (None: no limit)."""
        if rate is None:
            self.ring: list[float] | None = None
            self.period = 1.0
        else:
            size = max(1, math.floor(rate))
            # rate < 1: one fire per 1/rate seconds
            self.period = 1.0 if rate >= 1 else 1.0 / rate
            self.ring = [-math.inf] * size
        self.slot = 0

    def set_budget(self, budget: float | None) -> None:
        """Disable the instrument when its evaluations take over budget seconds within one
        second (None: no budget, and no timing)."""
        self.budget = budget
        # The budget's sampling: the next evaluation is timed when fired reaches next_timed.
        self.next_timed: float = 0 if budget is not None else math.inf

    def as_dict(self) -> dict[str, int]:
        return {"fired": self.fired, "dropped": self.dropped, "errors": self.errors}
