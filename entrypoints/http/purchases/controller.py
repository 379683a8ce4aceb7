"""Products, the user's subscription, and purchases presented by the app."""

from __future__ import annotations

from typing import TypeVar

from litestar import Controller, get, post
from litestar.params import JSONBody

from genstudio.core.model.errors import StoreUnavailable
from genstudio.core.model.purchases.products import Store
from genstudio.core.services import queries
from genstudio.core.services.purchases.claims import redeem_purchase
from genstudio.entrypoints.http.deps import (
    AnalyticsDep,
    AppleStoreDep,
    ClockDep,
    GoogleStoreDep,
    PrincipalDep,
    ProductsDep,
    PushKickDep,
    RealtimeHubDep,
    UowFactoryDep,
)
from genstudio.entrypoints.http.purchases.schemas import (
    ApplePurchaseRequest,
    GooglePurchaseRequest,
    ProductItem,
    ProductList,
    PurchaseResponse,
    SubscriptionResponse,
)

S = TypeVar("S")


def configured(client: S | None, store: Store) -> S:
    """The store's adapter; a store this server is not configured for answers 503."""
    if client is None:
        raise StoreUnavailable(f"{store.value} purchases are not configured on this server")
    return client


class PurchasesController(Controller):
    path = "/v1"
    tags = ["purchases"]

    @get("/products", summary="Credit packs and subscription plans, with each store's ids")
    async def products(self, principal: PrincipalDep, products: ProductsDep) -> ProductList:
        return ProductList(items=[ProductItem.of(p) for p in products.all()])

    @get("/subscription", summary="The user's subscription: state, plan, period, next allowance")
    async def subscription(
        self, principal: PrincipalDep, uow_factory: UowFactoryDep, products: ProductsDep
    ) -> SubscriptionResponse:
        view = await queries.subscription(uow_factory, principal.user_id, products)
        return SubscriptionResponse.of(view)

    @post(
        "/purchases/apple",
        status_code=200,
        summary="Redeem a StoreKit 2 signed transaction (a pack or a subscription)",
    )
    async def apple(
        self,
        data: JSONBody[ApplePurchaseRequest],
        principal: PrincipalDep,
        apple_store: AppleStoreDep,
        uow_factory: UowFactoryDep,
        products: ProductsDep,
        clock: ClockDep,
        push_kick: PushKickDep,
        analytics: AnalyticsDep,
        realtime_hub: RealtimeHubDep,
    ) -> PurchaseResponse:
        client = configured(apple_store, Store.APPLE)
        event = await client.verify_purchase(data.signed_transaction)
        done = await redeem_purchase(
            uow_factory,
            event,
            user_id=principal.user_id,
            email=principal.email,
            catalog=products,
            now=clock.now(),
            kick=push_kick,
            analytics=analytics,  # credits purchased, subscription started (issue #20)
            realtime=realtime_hub,  # credits.changed to the open app (issue #18)
        )
        return PurchaseResponse.of(done.outcome, done.balance, done.subscription)

    @post(
        "/purchases/google",
        status_code=200,
        summary="Redeem a Google Play purchase token (a pack or a subscription)",
    )
    async def google(
        self,
        data: JSONBody[GooglePurchaseRequest],
        principal: PrincipalDep,
        google_store: GoogleStoreDep,
        uow_factory: UowFactoryDep,
        products: ProductsDep,
        clock: ClockDep,
        push_kick: PushKickDep,
        analytics: AnalyticsDep,
        realtime_hub: RealtimeHubDep,
    ) -> PurchaseResponse:
        client = configured(google_store, Store.GOOGLE)
        product = products.require_for_store(Store.GOOGLE, data.product_id)
        event = await client.verify_purchase(data.product_id, data.purchase_token, product.kind)
        done = await redeem_purchase(
            uow_factory,
            event,
            user_id=principal.user_id,
            email=principal.email,
            catalog=products,
            now=clock.now(),
            acknowledger=client,  # Google refunds what it does not hear of in 3 days
            kick=push_kick,
            analytics=analytics,  # credits purchased, subscription started (issue #20)
            realtime=realtime_hub,  # credits.changed to the open app (issue #18)
        )
        return PurchaseResponse.of(done.outcome, done.balance, done.subscription)
