"""Notifications, the push outbox, preferences and push tokens in memory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.notifications import (
    Delivery,
    DeliveryStatus,
    EventKind,
    Notification,
    Preferences,
    PushTicket,
    PushToken,
)


class InMemoryNotifications(_Repo):
    async def claim_key(self, user_id: uuid.UUID, key: str, notification_id: uuid.UUID) -> bool:
        await self._uow.acquire(("notification_key", user_id, key))
        if (user_id, key) in self._d.notification_keys:
            return False
        self._d.notification_keys[(user_id, key)] = notification_id
        return True

    async def open_group(
        self, user_id: uuid.UUID, kind: EventKind, group: str, now: datetime
    ) -> Notification | None:
        await self._uow.acquire(("notification_group", user_id, kind, group))
        open_ = [
            n
            for n in self._d.notifications.values()
            if n.user_id == user_id
            and n.kind is kind
            and n.group == group
            and n.group_until is not None
            and n.group_until > now
        ]
        return max(open_, key=lambda n: (n.created_at, n.id), default=None)

    async def add(self, notification: Notification) -> None:
        self._d.notifications[notification.id] = notification

    async def update(self, notification: Notification) -> None:
        if notification.id not in self._d.notifications:
            raise NotFound(f"notification {notification.id} does not exist")
        self._d.notifications[notification.id] = notification

    async def get(self, notification_id: uuid.UUID) -> Notification | None:
        return self._d.notifications.get(notification_id)

    async def get_many(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Notification]:
        return {i: self._d.notifications[i] for i in ids if i in self._d.notifications}

    async def inbox(
        self, user_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Notification]:
        mine = [
            n
            for n in self._d.notifications.values()
            if n.user_id == user_id
            and n.in_inbox
            and (before is None or (n.updated_at, n.id) < before)
        ]
        return sorted(mine, key=lambda n: (n.updated_at, n.id), reverse=True)[:limit]

    async def unread_count(self, user_id: uuid.UUID) -> int:
        return sum(
            1
            for n in self._d.notifications.values()
            if n.user_id == user_id and n.in_inbox and n.read_at is None
        )

    async def mark_read(
        self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None, now: datetime
    ) -> int:
        wanted = None if ids is None else set(ids)
        changed = 0
        for n in list(self._d.notifications.values()):
            if (
                n.user_id == user_id
                and n.in_inbox
                and n.read_at is None
                and (wanted is None or n.id in wanted)
            ):
                self._d.notifications[n.id] = msgspec.structs.replace(n, read_at=now)
                changed += 1
        return changed

    async def add_delivery(self, delivery: Delivery) -> None:
        key = (delivery.notification_id, delivery.seq)
        if any((d.notification_id, d.seq) == key for d in self._d.deliveries.values()):
            raise DuplicateEntry(f"delivery {key} exists")
        self._d.deliveries[delivery.id] = delivery

    async def pending_delivery(self, notification_id: uuid.UUID) -> Delivery | None:
        pending = [
            d
            for d in self._d.deliveries.values()
            if d.notification_id == notification_id and d.status is DeliveryStatus.PENDING
        ]
        return max(pending, key=lambda d: d.seq, default=None)

    async def last_seq(self, notification_id: uuid.UUID) -> int:
        return max(
            (d.seq for d in self._d.deliveries.values() if d.notification_id == notification_id),
            default=0,
        )

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[Delivery]:
        # claims one after the other (Postgres: SKIP LOCKED), each seeing the last's
        await self._uow.acquire(("delivery_claims",))
        due = sorted(
            (
                d
                for d in self._d.deliveries.values()
                if d.status is DeliveryStatus.PENDING
                and d.due_at <= now
                and (d.claimed_until is None or d.claimed_until <= now)
            ),
            key=lambda d: (d.due_at, d.id),
        )[:limit]
        claimed = [msgspec.structs.replace(d, claimed_until=until) for d in due]
        for d in claimed:
            self._d.deliveries[d.id] = d
        return claimed

    async def get_delivery(self, delivery_id: uuid.UUID, *, lock: bool = False) -> Delivery | None:
        if lock:
            await self._uow.acquire(("delivery", delivery_id))
        return self._d.deliveries.get(delivery_id)

    async def save_delivery(self, delivery: Delivery) -> None:
        if delivery.id not in self._d.deliveries:
            raise NotFound(f"delivery {delivery.id} does not exist")
        self._d.deliveries[delivery.id] = delivery

    async def get_deliveries(
        self, ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, Delivery]:
        found: dict[uuid.UUID, Delivery] = {}
        for delivery_id in sorted(set(ids)):
            delivery = await self.get_delivery(delivery_id, lock=lock)
            if delivery is not None:
                found[delivery_id] = delivery
        return found

    async def save_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.id in self._d.deliveries:
                self._d.deliveries[delivery.id] = delivery

    async def count_deliveries(self, status: DeliveryStatus) -> int:
        return sum(1 for d in self._d.deliveries.values() if d.status is status)

    async def add_tickets(self, tickets: Sequence[PushTicket]) -> None:
        for t in tickets:
            self._d.push_tickets[t.id] = t

    async def tickets_before(self, before: datetime, limit: int) -> list[PushTicket]:
        old = [t for t in self._d.push_tickets.values() if t.created_at < before]
        return sorted(old, key=lambda t: (t.created_at, t.id))[:limit]

    async def delete_tickets(self, ids: Sequence[str]) -> None:
        for ticket_id in ids:
            self._d.push_tickets.pop(ticket_id, None)

    async def preferences(self, user_id: uuid.UUID) -> Preferences | None:
        return self._d.notification_preferences.get(user_id)

    async def preferences_of(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        saved = self._d.notification_preferences
        return {u: saved[u] for u in user_ids if u in saved}

    async def save_preferences(self, preferences: Preferences) -> None:
        self._d.notification_preferences[preferences.user_id] = preferences


class InMemoryPushTokens(_Repo):
    async def register(self, token: PushToken) -> None:
        await self._uow.acquire(("push_token", token.token))
        self._d.push_tokens[token.token] = token

    async def get(self, token: str) -> PushToken | None:
        return self._d.push_tokens.get(token)

    async def remove(self, user_id: uuid.UUID, token: str) -> bool:
        found = self._d.push_tokens.get(token)
        if found is None or found.user_id != user_id:
            return False
        del self._d.push_tokens[token]
        return True

    async def active_of(self, user_id: uuid.UUID) -> list[PushToken]:
        mine = [t for t in self._d.push_tokens.values() if t.user_id == user_id and t.active]
        return sorted(mine, key=lambda t: (t.created_at, t.token))

    async def active_of_users(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PushToken]]:
        found: dict[uuid.UUID, list[PushToken]] = {}
        for user_id in dict.fromkeys(user_ids):
            if mine := await self.active_of(user_id):
                found[user_id] = mine
        return found

    async def deactivate(self, tokens: Sequence[str], now: datetime) -> int:
        changed = 0
        for token in tokens:
            found = self._d.push_tokens.get(token)
            if found is not None and found.active:
                self._d.push_tokens[token] = msgspec.structs.replace(
                    found, active=False, updated_at=now
                )
                changed += 1
        return changed
