"""The price a store states for a purchase or a subscription payment (issue #20).

Amounts are integers in **micro-units** of the currency: 1 unit (one dollar, one euro,
one yen) is 1 000 000. Apple signs milliunits (``price`` 4990 is 4.99: times 1 000
here), Google a ``Money`` of ``units`` and ``nanos`` (divided by 1 000 here); micros
hold both exactly. ``currency`` is the ISO 4217 code the store names (``USD``).

What the price is, as each store states it:

- Apple: ``price``/``currency`` of the signed transaction, what the customer was
  charged for it, an offer's discount and a pack's quantity included (tax as the
  storefront's price includes it);
- Google: a subscription payment's line item's ``autoRenewingPlan.recurringPrice``,
  the plan's list price as it stands when we read it, before tax and without offer
  discounts; a one-time product (a pack) states no price: it stays unpriced.

A figure for operators (``GET /v1/admin/stats``), never a credit amount: the stores'
own reports remain the books of record. None where the store gave none or gave
nonsense: a price never makes a purchase fail.
"""

from __future__ import annotations

import msgspec

from genstudio.core.model.errors import InvalidInput

#: micro-units in one unit of a currency
MICROS = 1_000_000


def _valid(amount_micros: int, currency: str) -> bool:
    return amount_micros >= 0 and len(currency) == 3 and currency.isascii() and currency.isupper()


class Price(msgspec.Struct, frozen=True, kw_only=True):
    amount_micros: int  # >= 0, in millionths of one unit of ``currency``
    currency: str  # ISO 4217, three capital letters

    def __post_init__(self) -> None:
        if not _valid(self.amount_micros, self.currency):
            raise InvalidInput(f"not a price: {self.amount_micros} {self.currency!r}")

    @classmethod
    def of(cls, amount_micros: object, currency: object) -> Price | None:
        """The price the store stated, or None where it stated none that makes sense
        (no amount, no currency, a negative amount, a currency that is no code)."""
        if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
            return None
        if not isinstance(currency, str) or not _valid(amount_micros, currency):
            return None
        return cls(amount_micros=amount_micros, currency=currency)

    def part(self, numerator: int, denominator: int) -> int:
        """``numerator / denominator`` of the amount, in micros, to the micro below
        (what a partial refund gave back: a share of it, or some of its items)."""
        if denominator <= 0 or not 0 <= numerator <= denominator:
            raise InvalidInput(f"not a part of a price: {numerator}/{denominator}")
        return self.amount_micros * numerator // denominator
