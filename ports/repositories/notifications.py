"""Notifications (issue #18): the inbox, its once-only keys, the push outbox and
tickets, preferences; and push tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from genstudio.core.model.notifications import (
    Delivery,
    DeliveryStatus,
    EventKind,
    Notification,
    Preferences,
    PushTicket,
    PushToken,
)


class NotificationRepository(Protocol):
    async def claim_key(self, user_id: uuid.UUID, key: str, notification_id: uuid.UUID) -> bool:
        """Record that the event ``key`` of the user was told (as ``notification_id``);
        False when it already was (this transaction's or a committed one's), and then
        nothing is written. Concurrent claims of one key: one wins, the other waits for
        it and answers False (or the unit fails with ``DuplicateEntry``; the caller's
        retry then answers False)."""
        ...

    async def open_group(
        self, user_id: uuid.UUID, kind: EventKind, group: str, now: datetime
    ) -> Notification | None:
        """The user's notification of ``kind`` about ``group`` whose window is still
        open at ``now`` (``group_until > now``), locked until the transaction ends so
        concurrent members count one after the other; None if there is none."""
        ...

    async def add(self, notification: Notification) -> None: ...

    async def update(self, notification: Notification) -> None:
        """Raises NotFound for a notification that does not exist."""
        ...

    async def get(self, notification_id: uuid.UUID) -> Notification | None: ...

    async def get_many(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Notification]:
        """The notifications among ``ids`` that exist, by id (one read for a pass)."""
        ...

    async def inbox(
        self, user_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Notification]:
        """The user's inbox (``in_inbox`` only), newest first by (updated_at, id),
        strictly after the keyset ``before`` when given."""
        ...

    async def unread_count(self, user_id: uuid.UUID) -> int: ...

    async def mark_read(
        self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None, now: datetime
    ) -> int:
        """Mark the user's unread inbox notifications among ``ids`` (all when None)
        read; others' ids, and rows hidden from the inbox, are ignored. Returns how
        many changed."""
        ...

    # --- the push outbox ---

    async def add_delivery(self, delivery: Delivery) -> None:
        """Raises DuplicateEntry when (notification_id, seq) exists."""
        ...

    async def pending_delivery(self, notification_id: uuid.UUID) -> Delivery | None:
        """The notification's delivery still pending, if any (the highest seq)."""
        ...

    async def last_seq(self, notification_id: uuid.UUID) -> int:
        """The highest seq of the notification's deliveries, 0 for none."""
        ...

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due at ``now`` and not held by another sender (a lease
        ``claimed_until`` in the past is free again: its sender died), oldest first,
        leased until ``until``; committed by the caller. Concurrent claimers get
        different rows (SKIP LOCKED)."""
        ...

    async def get_delivery(
        self, delivery_id: uuid.UUID, *, lock: bool = False
    ) -> Delivery | None: ...

    async def save_delivery(self, delivery: Delivery) -> None:
        """Raises NotFound for a delivery that does not exist."""
        ...

    async def get_deliveries(
        self, ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, Delivery]:
        """The deliveries among ``ids`` that exist, by id; ``lock``: each locked until
        the transaction ends (taken in id order, so two passes never deadlock)."""
        ...

    async def save_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """``save_delivery`` for many in one go; deliveries that do not exist are
        ignored (the caller read them under lock in this unit)."""
        ...

    async def count_deliveries(self, status: DeliveryStatus) -> int: ...

    # --- Expo tickets, for receipts ---

    async def add_tickets(self, tickets: Sequence[PushTicket]) -> None: ...

    async def tickets_before(self, before: datetime, limit: int) -> list[PushTicket]:
        """Tickets created before ``before``, oldest first."""
        ...

    async def delete_tickets(self, ids: Sequence[str]) -> None: ...

    # --- preferences ---

    async def preferences(self, user_id: uuid.UUID) -> Preferences | None:
        """None when the user never changed them (the defaults apply)."""
        ...

    async def preferences_of(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        """The saved preferences of those among ``user_ids`` who changed theirs."""
        ...

    async def save_preferences(self, preferences: Preferences) -> None: ...


class PushTokenRepository(Protocol):
    async def register(self, token: PushToken) -> None:
        """Insert or take over ``token.token``: it belongs to the last user who
        registered it, active again."""
        ...

    async def get(self, token: str) -> PushToken | None: ...

    async def remove(self, user_id: uuid.UUID, token: str) -> bool:
        """Delete the user's token; False when it is not theirs (or absent)."""
        ...

    async def active_of(self, user_id: uuid.UUID) -> list[PushToken]:
        """The user's active tokens, oldest registration first."""
        ...

    async def active_of_users(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PushToken]]:
        """``active_of`` for many users in one read; users without one are absent."""
        ...

    async def deactivate(self, tokens: Sequence[str], now: datetime) -> int:
        """Expo said these devices are gone (``DeviceNotRegistered``). Returns how
        many were active."""
        ...
