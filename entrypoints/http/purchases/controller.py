"""Products, the user's subscription, and purchases presented by the app."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, get, post
from litestar.params import JSONBody

from core.model.errors import StoreUnavailable
from core.model.purchases.products import ProductCatalog, Store
from core.model.purchases.store_events import Purchase, SubscriptionSnapshot
from core.services.purchases.acknowledgements import mark_acknowledged
from core.services.purchases.claims import claim_purchase
from core.services.purchases.outcomes import PurchaseOutcome
from core.services.purchases.subscriptions import SubscriptionView, subscription_of
from entrypoints.http.deps import PrincipalDep, RuntimeDep
from entrypoints.http.purchases.schemas import (
    ApplePurchaseRequest,
    GooglePurchaseRequest,
    ProductItem,
    ProductList,
    PurchaseResponse,
    SubscriptionResponse,
)
from entrypoints.runtime import Runtime
from ports.auth import Principal

log = logging.getLogger("genstudio.purchases")


def _store(runtime: Runtime, store: Store) -> Any:
    iap = runtime.container.iap
    client = iap.apple() if store is Store.APPLE else iap.google()
    if client is None:
        raise StoreUnavailable(f"{store.value} purchases are not configured on this server")
    return client


async def _claim(
    runtime: Runtime, principal: Principal, event: Purchase | SubscriptionSnapshot
) -> tuple[PurchaseOutcome, int, SubscriptionView | None]:
    c = runtime.container
    catalog: ProductCatalog = c.iap.products()
    async with c.uow_factory()() as uow:
        await uow.profiles.ensure(principal.user_id, principal.email)
        outcome = await claim_purchase(
            uow, event, user_id=principal.user_id, catalog=catalog, now=c.clock().now()
        )
        balance = await uow.ledger.balance(principal.user_id)
        view = await subscription_of(uow, principal.user_id, catalog)
        await uow.commit()
    return outcome, balance, view


class PurchasesController(Controller):
    path = "/v1"
    tags = ["purchases"]

    @get("/products", summary="Credit packs and subscription plans, with each store's ids")
    async def products(self, principal: PrincipalDep, runtime: RuntimeDep) -> ProductList:
        catalog: ProductCatalog = runtime.container.iap.products()
        return ProductList(items=[ProductItem.of(p) for p in catalog.all()])

    @get("/subscription", summary="The user's subscription: state, plan, period, next allowance")
    async def subscription(
        self, principal: PrincipalDep, runtime: RuntimeDep
    ) -> SubscriptionResponse:
        c = runtime.container
        async with c.uow_factory()() as uow:
            view = await subscription_of(uow, principal.user_id, c.iap.products())
        return SubscriptionResponse.of(view)

    @post(
        "/purchases/apple",
        status_code=200,
        summary="Redeem a StoreKit 2 signed transaction (a pack or a subscription)",
    )
    async def apple(
        self, data: JSONBody[ApplePurchaseRequest], principal: PrincipalDep, runtime: RuntimeDep
    ) -> PurchaseResponse:
        event = await _store(runtime, Store.APPLE).verify_purchase(data.signed_transaction)
        outcome, balance, view = await _claim(runtime, principal, event)
        return PurchaseResponse.of(outcome, balance, view)

    @post(
        "/purchases/google",
        status_code=200,
        summary="Redeem a Google Play purchase token (a pack or a subscription)",
    )
    async def google(
        self, data: JSONBody[GooglePurchaseRequest], principal: PrincipalDep, runtime: RuntimeDep
    ) -> PurchaseResponse:
        c = runtime.container
        client = _store(runtime, Store.GOOGLE)
        product = c.iap.products().require_for_store(Store.GOOGLE, data.product_id)
        event = await client.verify_purchase(data.product_id, data.purchase_token, product.kind)
        outcome, balance, view = await _claim(runtime, principal, event)
        # after the commit: the credits exist, so tell Google we delivered; a failure
        # here is retried by acknowledge_pending within Google's three days
        await acknowledge_after_commit(runtime, outcome.transaction_id)
        return PurchaseResponse.of(outcome, balance, view)


async def acknowledge_after_commit(runtime: Runtime, transaction_id: str) -> None:
    c = runtime.container
    client = c.iap.google()
    async with c.uow_factory()() as uow:
        tx = await uow.purchases.get_transaction(Store.GOOGLE, transaction_id)
    if client is None or tx is None or tx.acknowledged:
        return
    try:
        await client.acknowledge(tx)
    except StoreUnavailable as exc:
        log.warning(
            "Google acknowledgement deferred",
            extra={"transaction_id": transaction_id, "error": exc.message},
        )
        return
    await mark_acknowledged(c.uow_factory(), store=Store.GOOGLE, transaction_id=transaction_id)
