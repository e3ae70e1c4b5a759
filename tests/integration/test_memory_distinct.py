"""Memory per distinct spec is flat: specs that each bring their own value text keep nothing
once removed, whatever the moment memory is measured.

The bounded caches keyed by an expression's text (the policy's compiled expressions) hold
the same number of entries at both measures once they are full: a cache emptied whenever it
filled up held anything from none to all of its entries, so that two measures a few hundred
specs apart differed by up to 300 KB (what was reported as about 110 bytes kept per spec).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from diagnose import ProbeManager, ProbeTestInstrument
from diagnose._safety.policy import COMPILED_CACHE, Policy
from probe_targets import shop
from support.memory import growth_after_warm_up
from support.probes import churn_spec

# Well past the cache's bound, so that it is full before the first measure with value texts
# past the small ints (0 to 256) that Python does not allocate; and at a moment where the
# cache as it was (512 entries, emptied when full) had been emptied 76 specs before: its
# fill grew by all MEASURED entries between the measures.
WARM_UP = 2 * 512 + 76
MEASURED = 400
# 100 bytes per distinct spec: the 400 would keep about 240 KB if the cache's fill moved.
BOUND = 100 * MEASURED


@pytest.fixture
def mgr() -> Iterator[ProbeManager]:
    manager = ProbeManager(process_id="memory-distinct")
    manager.instrument_classes["test"] = ProbeTestInstrument
    yield manager
    manager.specs.clear()
    manager.apply()


def test_distinct_value_texts_keep_no_memory_once_the_cache_is_full(mgr: ProbeManager) -> None:
    """Hundreds of specs, each its own value text, applied, fired and removed after the
    cache is full, keep under 100 bytes each."""

    def cycle(i: int) -> None:
        mgr.specs[f"d{i}"] = churn_spec("return", f"result + {i}")
        mgr.apply()
        assert shop.price(3) == 6
        del mgr.specs[f"d{i}"]
        mgr.apply()

    growth = growth_after_warm_up(cycle, WARM_UP, MEASURED)
    assert growth < BOUND, f"{growth} bytes kept by {MEASURED} distinct specs"


def test_the_compiled_cache_drops_the_least_recently_used() -> None:
    """The cache holds at most COMPILED_CACHE expressions; one used again stays."""
    policy = Policy()
    kept = policy.compile("x + 0", "<t>")
    for i in range(1, COMPILED_CACHE + 50):
        policy.compile(f"x + {i}", "<t>")
        assert policy.compile("x + 0", "<t>") is kept  # used again: the most recent
    assert len(policy._compiled) == COMPILED_CACHE
    assert ("x + 1", "<t>") not in policy._compiled
