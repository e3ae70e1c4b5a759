"""The known values the statistics tests feed their workers, the same in the test and in
every worker (tests/support/stats_worker.py): ``values(seed, count)``."""

from __future__ import annotations

import random

TIERS = ("gold", "silver", "bronze")


def values(seed: int, count: int) -> list[tuple[float | int, str, int]]:
    """Return count (value, tier, user) triples: values spread over six decades, some zero
    and negative, a few ints; tiers of skewed sizes; users from a pool of 20,000 ids."""
    rng = random.Random(seed)
    found: list[tuple[float | int, str, int]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.02:
            value: float | int = 0
        elif roll < 0.07:
            value = -rng.lognormvariate(0, 1.5)
        elif roll < 0.12:
            value = rng.randint(1, 5000)
        else:
            value = rng.lognormvariate(-3, 2)
        tier = TIERS[0] if roll < 0.6 else TIERS[1] if roll < 0.9 else TIERS[2]
        found.append((value, tier, rng.randrange(20_000)))
    return found
