"""Store notifications: App Store Server Notifications V2 and Google Play RTDN.

No user JWT: Apple's payload is a JWS verified against the configured roots; Google's
push carries an OIDC token verified against Google's certificates. Each notification
is applied once (deduplicated on notificationUUID / Pub/Sub messageId) and answered
200 only after its changes are committed; any failure answers 5xx so the store
delivers it again. A payload that does not verify answers 4xx (the store does not
retry it; a forger learns nothing).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from genstudio.core.model.purchases.products import ProductCatalog, Store
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.notifications.emit import Kick
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.outcomes import EventOutcome
from genstudio.entrypoints.http.deps import (
    AnalyticsDep,
    AppleStoreDep,
    ClockDep,
    GoogleStoreDep,
    ProductsDep,
    PushKickDep,
    RealtimeHubDep,
    UowFactoryDep,
)
from genstudio.entrypoints.http.purchases.controller import configured
from genstudio.entrypoints.http.purchases.schemas import AppleNotificationBody, WebhookResult
from genstudio.ports.clock import Clock
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.stores import StoreNotification
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.webhooks.stores")


async def _apply(
    uow_factory: UnitOfWorkFactory,
    products: ProductCatalog,
    clock: Clock,
    notification: StoreNotification,
    kick: Kick,
    analytics: Tracker | None = None,
    realtime: RealtimePublisher | None = None,
) -> WebhookResult:
    outcomes: list[EventOutcome] = await handle_notification(
        uow_factory,
        store=notification.store,
        notification_id=notification.notification_id,
        kind=notification.kind,
        events=notification.events,
        catalog=products,
        now=clock.now(),
        kick=kick,  # what the news told its user goes out now, not at the next pass
        analytics=analytics,  # subscriptions, purchases, clawbacks (issue #20)
        realtime=realtime,  # each moved balance to its user's open app (issue #18)
    )
    log.info(
        "store notification",
        extra={
            "store": notification.store.value,
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "actions": [o.action for o in outcomes],
        },
    )
    return WebhookResult(
        store=notification.store.value,
        notification_id=notification.notification_id,
        kind=notification.kind,
        actions=[o.action for o in outcomes],
        users=[o.user_id for o in outcomes if o.user_id is not None],
    )


@post(
    "/v1/webhooks/apple",
    status_code=200,
    tags=["webhooks"],
    security=[],
    summary="App Store Server Notifications V2 (signedPayload)",
)
async def apple_webhook(
    data: JSONBody[AppleNotificationBody],
    apple_store: AppleStoreDep,
    uow_factory: UowFactoryDep,
    products: ProductsDep,
    clock: ClockDep,
    push_kick: PushKickDep,
    analytics: AnalyticsDep,
    realtime_hub: RealtimeHubDep,
) -> WebhookResult:
    client = configured(apple_store, Store.APPLE)
    notification = await client.verify_notification(data.signed_payload)
    return await _apply(
        uow_factory, products, clock, notification, push_kick, analytics, realtime_hub
    )


@post(
    "/v1/webhooks/google",
    status_code=200,
    tags=["webhooks"],
    security=[],
    summary="Google Play real-time developer notifications (Pub/Sub push)",
)
async def google_webhook(
    request: Request[Any, Any, Any],
    google_store: GoogleStoreDep,
    uow_factory: UowFactoryDep,
    products: ProductsDep,
    clock: ClockDep,
    push_kick: PushKickDep,
    analytics: AnalyticsDep,
    realtime_hub: RealtimeHubDep,
) -> WebhookResult:
    client = configured(google_store, Store.GOOGLE)
    await client.verify_push(request.headers.get("authorization"))
    notification = await client.read_notification(await request.body())
    return await _apply(
        uow_factory, products, clock, notification, push_kick, analytics, realtime_hub
    )
