"""References to shop's functions that a probe must reach without being told of them."""

from __future__ import annotations

import functools

from probe_targets import shop
from probe_targets.shop import price  # noqa: F401  (a from-import copy is the point)

REGISTRY = {"price": shop.price}


def make_caller(fn):
    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    return call


def retry(fn):
    """A decorator without functools.wraps: it only keeps fn in its closure."""

    def again(*args, **kwargs):
        return fn(*args, **kwargs)

    return again


caller = make_caller(shop.price)
half_off = functools.partial(shop.price, discount=1)
retried_price = retry(shop.price)
