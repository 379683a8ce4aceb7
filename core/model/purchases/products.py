"""What the stores sell: consumable credit packs and subscription plans.

Our product ids are stable names the app and the ledger use; each store knows a
product by its own id, mapped here by configuration (``APPLE_PRODUCT_IDS``,
``GOOGLE_PRODUCT_IDS``). A store product id the catalog does not know is refused:
it can never grant credits.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.profiles import SubscriptionTier


class Store(enum.StrEnum):
    APPLE = "apple"
    GOOGLE = "google"


class ProductKind(enum.StrEnum):
    CONSUMABLE = "consumable"  # a credit pack: credits once, never expire
    SUBSCRIPTION = "subscription"  # a plan: an allowance each month, a queue tier


class BillingPeriod(enum.StrEnum):
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return 1 if self is BillingPeriod.MONTHLY else 12


class Product(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: ProductKind
    display_name: str
    #: a pack's credits, or a plan's allowance per month
    credits: int
    period: BillingPeriod | None = None
    tier: SubscriptionTier | None = None
    apple_product_id: str | None = None
    google_product_id: str | None = None

    def __post_init__(self) -> None:
        if self.credits <= 0:
            raise InvalidInput(f"product {self.id} must carry credits", field="credits")
        is_plan = self.kind is ProductKind.SUBSCRIPTION
        if is_plan != (self.period is not None) or is_plan != (self.tier is not None):
            raise InvalidInput(
                f"product {self.id}: a plan has a period and a tier, a pack has neither",
                field="kind",
            )

    def store_id(self, store: Store) -> str | None:
        return self.apple_product_id if store is Store.APPLE else self.google_product_id


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (or earlier), clamped to the month's end."""
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    month += 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


class ProductCatalog:
    """Products by our id and by each store's id."""

    def __init__(self, products: Iterable[Product]) -> None:
        self._by_id: dict[str, Product] = {}
        self._by_store: dict[tuple[Store, str], Product] = {}
        for product in products:
            if product.id in self._by_id:
                raise InvalidInput(f"product {product.id} is listed twice", field="id")
            self._by_id[product.id] = product
            for store in Store:
                store_id = product.store_id(store)
                if store_id is None:
                    continue
                if (store, store_id) in self._by_store:
                    raise InvalidInput(
                        f"{store} product {store_id} is mapped twice", field="product_ids"
                    )
                self._by_store[(store, store_id)] = product

    def all(self) -> list[Product]:
        return list(self._by_id.values())

    def get(self, product_id: str) -> Product | None:
        return self._by_id.get(product_id)

    def for_store(self, store: Store, store_product_id: str) -> Product | None:
        return self._by_store.get((store, store_product_id))

    def require_for_store(self, store: Store, store_product_id: str) -> Product:
        product = self.for_store(store, store_product_id)
        if product is None:
            raise InvalidInput(
                f"{store} product {store_product_id!r} is not for sale here", field="productId"
            )
        return product

    def with_store_ids(
        self, apple: Mapping[str, str] | None = None, google: Mapping[str, str] | None = None
    ) -> ProductCatalog:
        """The same products with (some of) their store ids replaced: ``{our id: store id}``."""
        for mapping in (apple or {}, google or {}):
            unknown = set(mapping) - set(self._by_id)
            if unknown:
                raise InvalidInput(
                    f"store product ids name unknown products: {sorted(unknown)}",
                    field="product_ids",
                )
        return ProductCatalog(
            msgspec.structs.replace(
                p,
                apple_product_id=(apple or {}).get(p.id, p.apple_product_id),
                google_product_id=(google or {}).get(p.id, p.google_product_id),
            )
            for p in self.all()
        )


def parse_product_ids(raw: str | None) -> dict[str, str]:
    """``"credits_100=com.app.c100,pro_monthly=com.app.pro.m"`` -> ``{our id: store id}``."""
    mapping: dict[str, str] = {}
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise InvalidInput(
                f"a product id mapping is 'our_id=store_id', not {part!r}", field="product_ids"
            )
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _pack(credits: int) -> Product:
    return Product(
        id=f"credits_{credits}",
        kind=ProductKind.CONSUMABLE,
        display_name=f"{credits:,} credits",
        credits=credits,
        apple_product_id=f"app.genstudio.credits.{credits}",
        google_product_id=f"credits_{credits}",
    )


def _plan(tier: SubscriptionTier, period: BillingPeriod, credits: int) -> Product:
    return Product(
        id=f"{tier.value}_{period.value}",
        kind=ProductKind.SUBSCRIPTION,
        display_name=f"{tier.value.title()} ({period.value})",
        credits=credits,
        period=period,
        tier=tier,
        apple_product_id=f"app.genstudio.{tier.value}.{period.value}",
        google_product_id=f"{tier.value}_{period.value}",
    )


DEFAULT_PRODUCTS = ProductCatalog(
    [
        _pack(100),
        _pack(550),
        _pack(1200),
        _plan(SubscriptionTier.PRO, BillingPeriod.MONTHLY, 500),
        _plan(SubscriptionTier.PRO, BillingPeriod.YEARLY, 500),
        _plan(SubscriptionTier.PREMIUM, BillingPeriod.MONTHLY, 1500),
        _plan(SubscriptionTier.PREMIUM, BillingPeriod.YEARLY, 1500),
    ]
)
