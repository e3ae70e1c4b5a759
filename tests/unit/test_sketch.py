"""The quantile sketch of fleet statistics: its buckets, accuracy, merging and flat form."""

from __future__ import annotations

import math
import random

import pytest

from diagnose.sketch import ALPHA, GAMMA, INVALID, Sketch, bucket_of, bucket_value, number


def true_quantile(ordered: list[float], q: float) -> float:
    """Return the value of rank q * (n - 1) among ordered values (the rank the sketch reads)."""
    return ordered[int(q * (len(ordered) - 1))]


def mixed_values(seed: int, count: int) -> list[float]:
    """Return values over many decades, negative ones and zeros among them."""
    rng = random.Random(seed)
    found: list[float] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.03:
            found.append(0.0)
        elif roll < 0.2:
            found.append(-rng.lognormvariate(0, 3))
        else:
            found.append(rng.lognormvariate(-2, 4))
    return found


@pytest.mark.parametrize("exponent", [-300, -30, -6, -1, 0, 1, 6, 30, 300])
def test_a_bucket_value_is_within_alpha_of_every_value_in_it(exponent: int) -> None:
    """bucket_value(bucket_of(x)) is within ALPHA of x, from tiny to huge values."""
    rng = random.Random(exponent)
    for _ in range(2000):
        x = rng.uniform(1, 10) * 10.0**exponent
        estimate = bucket_value(bucket_of(x))
        assert abs(estimate - x) <= ALPHA * x * (1 + 1e-12)


def test_buckets_are_powers_of_gamma() -> None:
    """Bucket k holds the values in (GAMMA**(k-1), GAMMA**k]."""
    for k in range(-40, 40):
        assert bucket_of(GAMMA**k * (1 + 1e-9)) == k + 1
        assert bucket_of(GAMMA**k * (1 - 1e-9)) == k


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_are_within_one_percent_of_the_true_ones(seed: int) -> None:
    """Every quantile read from the sketch is within 1 % of the value of its rank, zero
    and negative values included."""
    values = mixed_values(seed, 30_000)
    sketch = Sketch()
    assert sketch.add_all(values) == len(values)
    ordered = sorted(values)
    for q in (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0):
        expected = true_quantile(ordered, q)
        found = sketch.quantile(q)
        assert found is not None
        assert abs(found - expected) <= ALPHA * abs(expected) * (1 + 1e-9), q


def test_merging_sketches_is_exact() -> None:
    """Sketches of parts merged in any order hold the counts of one sketch of the whole."""
    values = mixed_values(7, 9000)
    whole = Sketch()
    whole.add_all(values)
    parts = [Sketch() for _ in range(3)]
    for i, value in enumerate(values):
        parts[i % 3].add(value)
    forward, backward = Sketch(), Sketch()
    for part in parts:
        forward.merge(part)
    for part in reversed(parts):
        backward.merge(part)
    for merged in (forward, backward):
        assert merged.count == whole.count == len(values)
        assert merged.positive == whole.positive and merged.negative == whole.negative
        assert merged.zero == whole.zero
        assert (merged.low, merged.high) == (min(values), max(values))
        assert math.isclose(merged.total, math.fsum(values), rel_tol=1e-9)
        assert merged.quantile(0.99) == whole.quantile(0.99)


@pytest.mark.parametrize(
    "value",
    [True, False, None, "3", b"3", [1], float("nan"), float("inf"), -float("inf"), 10**400],
)
def test_what_is_not_a_finite_number_counts_as_invalid(value: object) -> None:
    """Bools, texts, containers, NaN, infinities and ints beyond a float count as invalid."""
    sketch = Sketch()
    assert sketch.add(value) is False
    assert (sketch.count, sketch.invalid) == (0, 1)
    assert sketch.quantile(0.5) is None and sketch.mean is None


def test_subclasses_of_int_and_float_count_as_numbers() -> None:
    """An int or float subclass (not bool) is a number; other types are INVALID."""

    class Seconds(float):
        pass

    assert number(Seconds(1.5)) == 1.5 and type(number(Seconds(1.5))) is float
    assert number(7) == 7 and number(True) is INVALID and number("7") is INVALID


def test_min_and_max_keep_ints_exact() -> None:
    """min and max are the values as added: a big int stays that int."""
    sketch = Sketch()
    sketch.add_all([2**60 + 1, 3, 2.5])
    assert sketch.high == 2**60 + 1 and type(sketch.high) is int
    assert sketch.low == 2.5
    again = Sketch.from_fields(sketch.fields())
    assert (again.low, again.high) == (2.5, 2**60 + 1)


def test_the_flat_form_reads_back_the_same_sketch() -> None:
    """from_fields(fields()) gives back counts, sum, min, max, invalid and every bucket."""
    sketch = Sketch()
    sketch.add_all([*mixed_values(3, 500), "x", None])
    again = Sketch.from_fields({k: v.encode() for k, v in sketch.fields().items()})
    assert again.positive == sketch.positive and again.negative == sketch.negative
    assert (again.count, again.zero, again.invalid) == (sketch.count, sketch.zero, 2)
    assert again.total == sketch.total and (again.low, again.high) == (sketch.low, sketch.high)


def test_the_buckets_take_one_field_per_sign() -> None:
    """A sketch is a handful of fields however many buckets it has: its positive and its
    negative buckets each in one field of K:N pairs."""
    sketch = Sketch()
    sketch.add_all([1.0, 100.0, 100.0, -5.0, *(1.5**n for n in range(40))])
    fields = sketch.fields()
    assert set(fields) == {"n", "sum", "min", "max", "inv", "+", "-"}
    assert fields["-"] == f"{bucket_of(5.0)}:1"
    assert f"{bucket_of(100.0)}:2" in fields["+"].split()


def test_a_sketch_of_one_value_reads_that_value() -> None:
    """With one value (or all equal), every quantile is that value exactly (kept in [min, max])."""
    sketch = Sketch()
    sketch.add_all([0.25] * 10)
    assert {sketch.quantile(q) for q in (0, 0.5, 1)} == {0.25}
