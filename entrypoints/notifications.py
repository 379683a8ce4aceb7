"""Wiring for notifications (issue #18): the push sender (Expo when configured), and
the after-commit kick that delivers the push outbox in this process right away."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from genstudio.adapters.expo import ExpoPushClient
from genstudio.core.model.notifications import NotificationPolicy
from genstudio.core.services.notifications.delivery import PushDelivery
from genstudio.entrypoints.settings import Settings
from genstudio.ports.push import PushSender

log = logging.getLogger("genstudio.notifications")


def push_sender(settings: Settings) -> PushSender | None:
    """Expo when ``EXPO_PUSH_ENABLED`` or ``EXPO_ACCESS_TOKEN`` is set; else None (the
    embedded default: the inbox is the in-app channel, push deliveries are skipped)."""
    if not settings.expo.enabled:
        return None
    return ExpoPushClient(
        base_url=settings.expo.base_url,
        access_token=settings.expo.access_token,
        rate=settings.expo.rate if settings.expo.rate > 0 else None,
    )


def notification_policy(settings: Settings) -> NotificationPolicy:
    """``GENSTUDIO_NOTIFY_*``: the aggregation window, a sender's lease on a push (a
    killed sender's pushes wait this long for the next pass), the low-balance line."""
    return NotificationPolicy(
        aggregation_window=timedelta(seconds=settings.notify.aggregation_window),
        claim_for=timedelta(seconds=settings.notify.push_lease),
        low_balance_below=settings.notify.low_balance_below,
    )


class DeliveryKicker:
    """``kick()`` (an after-commit effect) starts one delivery pass in the background;
    kicks that arrive while a pass runs make one more pass after it, so a burst of
    commits shares Expo requests. Losing a kick (the process dies) loses nothing: the
    reconciler's pass delivers the outbox rows."""

    def __init__(self, delivery: PushDelivery | None = None) -> None:
        self.delivery = delivery
        self._task: asyncio.Task[None] | None = None
        self._again = False

    async def kick(self) -> None:
        if self.delivery is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self.delivery is not None
        while True:
            self._again = False
            try:
                report = await self.delivery.deliver_due()
            except Exception:
                log.exception("push delivery pass failed; the reconciler retries")
                return
            if not (self._again or report.handled >= 500):
                return
