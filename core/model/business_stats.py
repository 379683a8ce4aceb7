"""What the business looks like, for operators (``GET /v1/admin/stats``): active users,
generations per user, conversion to paid, purchases, revenue and refunds per store.

Definitions (the same in every adapter):

- a user is **active** in a window when they did something in it: submitted a job,
  published a post, liked, commented, or bought; erased accounts are not counted;
- a **generation** is a submitted image, edit or video job (not a training job, not an
  operator's re-run of a dead letter); per user means per user who generated;
- **paying** users bought at least once (a pack or a subscription payment), Apple's
  Sandbox purchases not counted; conversion is paying users over users;
- per store and window: purchases (Sandbox apart), subscription payments among them,
  credits sold by packs, and refunds and revocations by when the store last told us
  of them, with the credits clawed back; a transaction refunded in part (a pack still
  granted for the rest) is one of ``refunds`` too, and one refunded in part and then
  in full is still one;
- money, per store and window and by currency, in micro-units (1 000 000 to the
  unit, ``purchases.prices``): ``revenue_micros`` sums the price the store stated
  for each purchase counted (Sandbox apart, as purchases are), ``refunded_micros``
  what the refunds counted in ``refunds`` gave back of those prices
  (``StoreTransaction.refunded_micros``): the whole price for a full refund, the
  refunded share (Apple's ``revocationPercentage``) or items (Google's
  ``voidedQuantity``, where a price is known) of it for a partial one; a revocation
  without a refund gives no money back. Not every purchase is
  priced: Google's one-time products (packs) state no price, Google's subscription
  price is the plan's list price before tax and discounts, Apple's is what the
  customer was charged; ``priced_purchases`` and ``unpriced_purchases`` say how
  much of ``purchases`` the sums cover. Currencies are never converted or added
  together. The stores' own reports remain the books of record: ``by_product`` lets
  a price list turn counts into revenue where no price was stated.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

#: the windows, each ending now
WINDOWS: dict[str, timedelta] = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}

#: the job kinds that count as generations
GENERATION_KINDS = frozenset({"image", "edit", "video"})


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    window: str
    since: datetime
    active_users: int
    new_users: int
    generating_users: int
    generations: int
    #: jobs submitted, every kind (training included)
    jobs_by_kind: dict[str, int]
    paying_users: int  # users who bought in the window

    @property
    def generations_per_user(self) -> float | None:
        return self.generations / self.generating_users if self.generating_users else None


class ProductCounts(msgspec.Struct, frozen=True, kw_only=True):
    purchases: int = 0
    refunds: int = 0


class StoreTotals(msgspec.Struct, frozen=True, kw_only=True):
    store: str
    window: str  # a window of WINDOWS, or "all"
    purchases: int
    subscription_payments: int
    credits_sold: int
    refunds: int
    credits_clawed_back: int
    sandbox_purchases: int
    by_product: dict[str, ProductCounts]
    #: currency -> the stated prices of ``purchases``, in micro-units
    revenue_micros: dict[str, int] = msgspec.field(default_factory=dict)
    #: currency -> what ``refunds`` gave back of their stated prices (all of a price,
    #: or a partial refund's share of it)
    refunded_micros: dict[str, int] = msgspec.field(default_factory=dict)
    priced_purchases: int = 0  # of ``purchases``, with a price
    unpriced_purchases: int = 0  # of ``purchases``, without


class Users(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    paying: int
    subscribers: int  # with an entitled subscription now

    @property
    def conversion(self) -> float | None:
        return self.paying / self.total if self.total else None


class BusinessStats(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    users: Users
    activity: list[Activity]
    stores: list[StoreTotals]
