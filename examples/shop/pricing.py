"""Prices of carts: the functions the demo probes."""

from __future__ import annotations

__all__ = (
    "CARD_LIMIT",
    "PRICES",
    "Cart",
    "OutOfStock",
    "PaymentDeclined",
    "PaymentError",
    "pay",
    "total",
    "unit_price",
)

PRICES = {"apple": 0.5, "bread": 2.25, "cheese": 7.0, "coffee": 9.5, "milk": 1.2}
#: What one card may be charged at most; larger carts are declined.
CARD_LIMIT = 25.0
#: Units of each item the shop holds; a cart asking for more is out of stock.
STOCK = {"apple": 50, "bread": 10, "cheese": 3, "coffee": 20, "milk": 12}


class PaymentError(Exception):
    """A cart could not be paid for."""


class PaymentDeclined(PaymentError):
    """The card was refused."""


class OutOfStock(PaymentError):
    """The shop holds fewer of an item than a cart asks for."""


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


def reserve(items: dict[str, int]) -> None:
    """Set aside the items of a cart; raise OutOfStock if the shop holds too few."""
    for item, count in items.items():
        if count > STOCK[item]:
            raise OutOfStock(f"{count} x {item} asked, {STOCK[item]} in stock")


def charge(amount: float, card_token: str) -> str:
    """Charge a card; return the receipt number, or raise PaymentDeclined over the limit."""
    if amount > CARD_LIMIT:
        raise PaymentDeclined(f"card declined: {amount:.2f} is over the limit of {CARD_LIMIT:.2f}")
    return f"receipt-{sum(map(ord, card_token)) * 7919 % 1_000_000:06d}"


def pay(cart: Cart, card_token: str, discount: float = 0.0) -> str:
    """Reserve a cart's items and charge its total to a card; return the receipt number.

    Fails for some carts: too many of an item (OutOfStock), or a total over the card's
    limit (PaymentDeclined).
    """
    reserve(cart.items)
    amount = cart.checkout(discount)
    return charge(amount, card_token)
