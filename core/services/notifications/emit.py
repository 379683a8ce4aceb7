"""Writing a notification in the transaction of what caused it.

``Notifier.tell(uow, event, now)`` runs inside the caller's unit of work: the
notification (the inbox row), its once-only key and, when the user allows push, the
push outbox row commit or roll back with the job, the grant or the refund that caused
them. After the commit it publishes ``notification.created`` for an open app and kicks
the push delivery; both are effects (latency), the outbox row is the guarantee.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from genstudio.core.model.ids import uuid7
from genstudio.core.model.notifications import (
    AGGREGATED,
    Channel,
    Delivery,
    DeliveryStatus,
    Event,
    Notification,
    NotificationPolicy,
    default_preferences,
    joined,
    new_notification,
)
from genstudio.ports.realtime import NOTIFICATION_CREATED, RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork

log = logging.getLogger("genstudio.notifications")

Kick = Callable[[], Awaitable[None]]


def realtime_payload(notification: Notification) -> dict[str, object]:
    """What an open app gets (the words are rendered by the app or the realtime edge)."""
    return {
        "id": str(notification.id),
        "kind": notification.kind.value,
        "category": notification.category.value,
        "data": dict(notification.data),
        "count": notification.count,
        "read": notification.read_at is not None,
        "createdAt": notification.created_at.isoformat(),
        "updatedAt": notification.updated_at.isoformat(),
    }


class Notifier:
    """Writes notifications into a caller's unit of work. Without ``realtime`` and
    ``kick`` (a use case not wired to them) it still writes the outbox row: the
    reconciler's pass delivers it."""

    def __init__(
        self,
        policy: NotificationPolicy | None = None,
        *,
        realtime: RealtimePublisher | None = None,
        kick: Kick | None = None,
    ) -> None:
        self.policy = policy or NotificationPolicy()
        self.realtime = realtime
        self.kick = kick

    async def tell(self, uow: UnitOfWork, event: Event, now: datetime) -> Notification | None:
        """Record ``event`` for its user, once per ``event.key``; None when it was told
        before or the user allows neither channel for its category. A burst of an
        aggregated kind within the window joins the open notification (counted); its
        push then is one summary after the window, not one per member."""
        repo = uow.notifications
        prefs = await repo.preferences(event.user_id) or default_preferences(event.user_id)
        in_app = prefs.allows(event.category, Channel.IN_APP)
        push = prefs.allows(event.category, Channel.PUSH)
        if not (in_app or push):
            return None
        quiet_until = prefs.quiet_until(now) if push else None
        if event.group is not None and event.kind in AGGREGATED:
            burst = await repo.open_group(event.user_id, event.kind, event.group, now)
            if burst is not None:
                if not await repo.claim_key(event.user_id, event.key, burst.id):
                    return None
                notification = joined(burst, event, now)
                await repo.update(notification)
                if push and await repo.pending_delivery(notification.id) is None:
                    assert notification.group_until is not None
                    due = max(notification.group_until, quiet_until or now)
                    seq = await repo.last_seq(notification.id) + 1
                    await repo.add_delivery(_delivery(notification, seq, due, now))
                self._after_commit(uow, notification, kick=False)
                return notification
        notification = new_notification(
            event, in_inbox=in_app, now=now, window=self.policy.aggregation_window
        )
        if not await repo.claim_key(event.user_id, event.key, notification.id):
            return None
        await repo.add(notification)
        if push:
            await repo.add_delivery(_delivery(notification, 1, quiet_until or now, now))
        self._after_commit(uow, notification, kick=push and quiet_until is None)
        return notification

    def _after_commit(self, uow: UnitOfWork, notification: Notification, *, kick: bool) -> None:
        realtime, kicker = self.realtime, self.kick
        if realtime is not None and notification.in_inbox:
            payload = realtime_payload(notification)

            async def publish() -> None:
                await realtime.publish(notification.user_id, NOTIFICATION_CREATED, payload)

            uow.after_commit(publish)
        if kick and kicker is not None:
            uow.after_commit(kicker)


def _delivery(notification: Notification, seq: int, due: datetime, now: datetime) -> Delivery:
    return Delivery(
        id=uuid7(),
        notification_id=notification.id,
        user_id=notification.user_id,
        seq=seq,
        status=DeliveryStatus.PENDING,
        due_at=due,
        created_at=now,
    )


#: the default for use cases not wired to realtime and a kick: rows only
ROWS_ONLY = Notifier()
