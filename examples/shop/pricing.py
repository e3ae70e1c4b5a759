"""Prices of carts: the functions the demo probes."""

from __future__ import annotations

__all__ = ("PRICES", "Cart", "total", "unit_price")

PRICES = {"apple": 0.5, "bread": 2.25, "cheese": 7.0, "coffee": 9.5, "milk": 1.2}


def unit_price(item: str) -> float:
    """Return the price of one item."""
    return PRICES[item]


def total(items: dict[str, int], discount: float = 0.0) -> float:
    """Return what a cart of items costs after a discount (0.1 is 10 % off)."""
    gross = sum(unit_price(item) * count for item, count in items.items())
    net = gross * (1.0 - discount)
    return round(net, 2)


class Cart:
    """A shopping cart."""

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.items: dict[str, int] = {}

    def add(self, item: str, count: int = 1) -> None:
        """Put count of an item in the cart."""
        self.items[item] = self.items.get(item, 0) + count

    def checkout(self, discount: float = 0.0) -> float:
        """Return the cart's total."""
        return total(self.items, discount)
