"""Periodic work beyond jobs: subscription allowances that fall due, and Google
acknowledgements that failed after commit (Google refunds what is not acknowledged
within three days). Driven like the reconciler: by the Taskiq scheduler in
production, by a loop in the embedded default. Every step is idempotent."""

from __future__ import annotations

import logging

from genstudio.core.model.purchases.products import Store
from genstudio.core.services.purchases.acknowledgements import acknowledge_pending
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from genstudio.entrypoints.containers import AppContainer

log = logging.getLogger("genstudio.maintenance")

#: seconds between runs
INTERVAL = 60


async def store_maintenance(container: AppContainer) -> None:
    now = container.clock().now()
    granted = await grant_due_allowances(
        container.uow_factory(),
        catalog=container.iap.products(),
        now=now,
        kick=container.delivery_kicker().kick,
        realtime=container.realtime(),  # each grant's credits.changed (issue #18)
    )
    acknowledged = 0
    google = container.iap.google()
    if google is not None:
        acknowledged = await acknowledge_pending(
            container.uow_factory(), google, store=Store.GOOGLE, now=now
        )
    # Expo's receipts (issue #18): DeviceNotRegistered deactivates the token
    await container.push_delivery().check_receipts()
    if granted or acknowledged:
        log.info(
            "store maintenance", extra={"credits_granted": granted, "acknowledged": acknowledged}
        )
