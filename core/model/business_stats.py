"""What the business looks like, for operators (``GET /v1/admin/stats``): active users,
generations per user, conversion to paid, purchases and refunds per store.

Definitions (the same in every adapter):

- a user is **active** in a window when they did something in it: submitted a job,
  published a post, liked, commented, or bought; erased accounts are not counted;
- a **generation** is a submitted image, edit or video job (not a training job, not an
  operator's re-run of a dead letter); per user means per user who generated;
- **paying** users bought at least once (a pack or a subscription payment), Apple's
  Sandbox purchases not counted; conversion is paying users over users;
- per store and window: purchases (Sandbox apart), subscription payments among them,
  credits sold by packs, and refunds and revocations by when the store told us, with
  the credits clawed back. No money: the stores' signed data names products, not the
  price the user paid in their currency; ``by_product`` lets a price list turn counts
  into revenue (the stores' own reports remain the books of record).
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
