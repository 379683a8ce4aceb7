"""Notifications, the push outbox, preferences and push tokens in Postgres (migration 0300).

Statements are built per call (SQLAlchemy Core on the unit of work's connection): the
notification writes ride the worker's completion and the stores' paths, not the
submission's hot path the compiled driver is for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import and_, cast, column, delete, func, or_, select, tuple_, update
from sqlalchemy import values as sa_values
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.repositories.rows import Row, _Repository, _utc, _utc_or_none
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.notifications import (
    Category,
    Channel,
    Data,
    Delivery,
    DeliveryStatus,
    EventKind,
    Notification,
    Platform,
    Preferences,
    PushTicket,
    PushToken,
    QuietHours,
)

_N = t.notifications.c
_K = t.notification_keys.c
_D = t.notification_deliveries.c
_T = t.push_tickets.c
_P = t.notification_preferences.c
_TOK = t.push_tokens.c
_DATA = msgspec.json.Decoder(Data)
_CHANNELS = msgspec.json.Decoder(dict[Category, dict[Channel, bool]])


def _notification(row: Row) -> Notification:
    return Notification(
        id=row["id"],
        user_id=row["user_id"],
        kind=EventKind(row["kind"]),
        category=Category(row["category"]),
        # jsonb comes back decoded; through msgspec again for the declared types
        data=_DATA.decode(msgspec.json.encode(row["data"])),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        in_inbox=row["in_inbox"],
        count=row["count"],
        group=row["group"],
        group_until=_utc_or_none(row["group_until"]),
        read_at=_utc_or_none(row["read_at"]),
    )


def _notification_values(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "user_id": n.user_id,
        "kind": n.kind.value,
        "category": n.category.value,
        "data": dict(n.data),  # SQLAlchemy's JSONB type encodes it
        "in_inbox": n.in_inbox,
        "count": n.count,
        "group": n.group,
        "group_until": n.group_until,
        "read_at": n.read_at,
        "created_at": n.created_at,
        "updated_at": n.updated_at,
    }


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        seq=row["seq"],
        status=DeliveryStatus(row["status"]),
        due_at=_utc(row["due_at"]),
        attempts=row["attempts"],
        claimed_until=_utc_or_none(row["claimed_until"]),
        created_at=_utc(row["created_at"]),
        finished_at=_utc_or_none(row["finished_at"]),
        detail=row["detail"],
    )


def _delivery_values(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "notification_id": d.notification_id,
        "user_id": d.user_id,
        "seq": d.seq,
        "status": d.status.value,
        "due_at": d.due_at,
        "attempts": d.attempts,
        "claimed_until": d.claimed_until,
        "created_at": d.created_at,
        "finished_at": d.finished_at,
        "detail": d.detail,
    }


def _token(row: Row) -> PushToken:
    return PushToken(
        token=row["token"],
        user_id=row["user_id"],
        platform=Platform(row["platform"]),
        device_id=row["device_id"],
        app_version=row["app_version"],
        active=row["active"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _preferences(row: Row) -> Preferences:
    quiet = (
        None
        if row["quiet_start"] is None
        else QuietHours(start=row["quiet_start"], end=row["quiet_end"])
    )
    return Preferences(
        user_id=row["user_id"],
        channels=_CHANNELS.decode(msgspec.json.encode(row["channels"])),
        quiet_hours=quiet,
        time_zone=row["time_zone"],
        language=row["language"],
        updated_at=_utc(row["updated_at"]),
    )


def values_table(rows: list[dict[str, Any]]) -> Any:
    """The deliveries' new values as a ``VALUES`` list to join an UPDATE on."""
    columns = [
        column(name, t.notification_deliveries.c[name].type)
        for name in ("id", "status", "due_at", "attempts", "claimed_until", "finished_at", "detail")
    ]
    return sa_values(*columns, name="v").data([tuple(r[c.name] for c in columns) for r in rows])


class SqlNotifications(_Repository):
    async def claim_key(self, user_id: uuid.UUID, key: str, notification_id: uuid.UUID) -> bool:
        # a concurrent claim of the key waits on the unique index, then does nothing
        statement = (
            insert(t.notification_keys)
            .values(user_id=user_id, key=key, notification_id=notification_id)
            .on_conflict_do_nothing()
            .returning(_K.key)
        )
        result = await self._conn.execute(statement)
        return result.first() is not None

    async def open_group(
        self, user_id: uuid.UUID, kind: EventKind, group: str, now: datetime
    ) -> Notification | None:
        query = (
            select(t.notifications)
            .where(
                _N.user_id == user_id,
                _N.kind == kind.value,
                _N.group == group,
                _N.group_until > now,
            )
            .order_by(_N.created_at.desc(), _N.id.desc())
            .limit(1)
            .with_for_update()
        )
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _notification(row)

    async def add(self, notification: Notification) -> None:
        await self._conn.execute(
            t.notifications.insert().values(_notification_values(notification))
        )

    async def update(self, notification: Notification) -> None:
        values = _notification_values(notification)
        del values["id"]
        result = await self._conn.execute(
            update(t.notifications).where(_N.id == notification.id).values(values)
        )
        if result.rowcount == 0:
            raise NotFound(f"notification {notification.id} does not exist")

    async def get(self, notification_id: uuid.UUID) -> Notification | None:
        query = select(t.notifications).where(_N.id == notification_id)
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _notification(row)

    async def get_many(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Notification]:
        if not ids:
            return {}
        query = select(t.notifications).where(_N.id.in_(list(set(ids))))
        rows = (await self._conn.execute(query)).mappings()
        return {r["id"]: _notification(r) for r in rows}

    async def inbox(
        self, user_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Notification]:
        query = select(t.notifications).where(_N.user_id == user_id, _N.in_inbox)
        if before is not None:
            query = query.where(tuple_(_N.updated_at, _N.id) < tuple_(*before))
        query = query.order_by(_N.updated_at.desc(), _N.id.desc()).limit(limit)
        return [_notification(r) for r in (await self._conn.execute(query)).mappings()]

    async def unread_count(self, user_id: uuid.UUID) -> int:
        query = (
            select(func.count())
            .select_from(t.notifications)
            .where(_N.user_id == user_id, _N.in_inbox, _N.read_at.is_(None))
        )
        return int((await self._conn.execute(query)).scalar_one())

    async def mark_read(
        self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None, now: datetime
    ) -> int:
        statement = (
            update(t.notifications)
            .where(_N.user_id == user_id, _N.in_inbox, _N.read_at.is_(None))
            .values(read_at=now)
        )
        if ids is not None:
            if not ids:
                return 0
            statement = statement.where(_N.id.in_(list(ids)))
        return int((await self._conn.execute(statement)).rowcount)

    async def add_delivery(self, delivery: Delivery) -> None:
        try:
            await self._conn.execute(
                t.notification_deliveries.insert().values(_delivery_values(delivery))
            )
        except IntegrityError as exc:
            raise DuplicateEntry(
                f"delivery ({delivery.notification_id}, {delivery.seq}) exists"
            ) from exc

    async def pending_delivery(self, notification_id: uuid.UUID) -> Delivery | None:
        query = (
            select(t.notification_deliveries)
            .where(_D.notification_id == notification_id, _D.status == "pending")
            .order_by(_D.seq.desc())
            .limit(1)
        )
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _delivery(row)

    async def last_seq(self, notification_id: uuid.UUID) -> int:
        query = select(func.coalesce(func.max(_D.seq), 0)).where(
            _D.notification_id == notification_id
        )
        return int((await self._conn.execute(query)).scalar_one())

    async def claim_due(self, now: datetime, until: datetime, limit: int) -> list[Delivery]:
        due = (
            select(_D.id)
            .where(
                _D.status == "pending",
                _D.due_at <= now,
                or_(_D.claimed_until.is_(None), _D.claimed_until <= now),
            )
            .order_by(_D.due_at, _D.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(t.notification_deliveries)
            .where(_D.id.in_(due))
            .values(claimed_until=until)
            .returning(t.notification_deliveries)
        )
        rows = [_delivery(r) for r in (await self._conn.execute(statement)).mappings()]
        return sorted(rows, key=lambda d: (d.due_at, d.id))

    async def get_delivery(self, delivery_id: uuid.UUID, *, lock: bool = False) -> Delivery | None:
        query = select(t.notification_deliveries).where(_D.id == delivery_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _delivery(row)

    async def save_delivery(self, delivery: Delivery) -> None:
        values = _delivery_values(delivery)
        del values["id"]
        result = await self._conn.execute(
            update(t.notification_deliveries).where(_D.id == delivery.id).values(values)
        )
        if result.rowcount == 0:
            raise NotFound(f"delivery {delivery.id} does not exist")

    async def get_deliveries(
        self, ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, Delivery]:
        if not ids:
            return {}
        query = select(t.notification_deliveries).where(_D.id.in_(list(set(ids)))).order_by(_D.id)
        if lock:
            query = query.with_for_update()
        return {r["id"]: _delivery(r) for r in (await self._conn.execute(query)).mappings()}

    async def save_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        # one UPDATE ... FROM (VALUES ...) for the pass, not one statement per row
        values = [_delivery_values(d) for d in deliveries]
        rows = values_table(values)
        # VALUES columns of NULLs come out as text: each is cast to its column's type
        cast_to = {
            name: cast(rows.c[name], t.notification_deliveries.c[name].type)
            for name in ("status", "due_at", "attempts", "claimed_until", "finished_at", "detail")
        }
        await self._conn.execute(
            update(t.notification_deliveries)
            .where(_D.id == cast(rows.c.id, _D.id.type))
            .values(cast_to)
        )

    async def count_deliveries(self, status: DeliveryStatus) -> int:
        query = (
            select(func.count())
            .select_from(t.notification_deliveries)
            .where(_D.status == status.value)
        )
        return int((await self._conn.execute(query)).scalar_one())

    async def add_tickets(self, tickets: Sequence[PushTicket]) -> None:
        if not tickets:
            return
        rows = [
            {"id": x.id, "token": x.token, "delivery_id": x.delivery_id, "created_at": x.created_at}
            for x in tickets
        ]
        await self._conn.execute(insert(t.push_tickets).values(rows).on_conflict_do_nothing())

    async def tickets_before(self, before: datetime, limit: int) -> list[PushTicket]:
        query = (
            select(t.push_tickets)
            .where(_T.created_at < before)
            .order_by(_T.created_at, _T.id)
            .limit(limit)
        )
        return [
            PushTicket(
                id=r["id"],
                token=r["token"],
                delivery_id=r["delivery_id"],
                created_at=_utc(r["created_at"]),
            )
            for r in (await self._conn.execute(query)).mappings()
        ]

    async def delete_tickets(self, ids: Sequence[str]) -> None:
        if ids:
            await self._conn.execute(delete(t.push_tickets).where(_T.id.in_(list(ids))))

    async def preferences(self, user_id: uuid.UUID) -> Preferences | None:
        query = select(t.notification_preferences).where(_P.user_id == user_id)
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _preferences(row)

    async def preferences_of(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        if not user_ids:
            return {}
        query = select(t.notification_preferences).where(_P.user_id.in_(list(set(user_ids))))
        return {r["user_id"]: _preferences(r) for r in (await self._conn.execute(query)).mappings()}

    async def save_preferences(self, preferences: Preferences) -> None:
        quiet = preferences.quiet_hours
        values: dict[str, Any] = {
            "channels": msgspec.to_builtins(preferences.channels),
            "quiet_start": None if quiet is None else quiet.start,
            "quiet_end": None if quiet is None else quiet.end,
            "time_zone": preferences.time_zone,
            "language": preferences.language,
            "updated_at": preferences.updated_at or func.now(),
        }
        statement = insert(t.notification_preferences).values(user_id=preferences.user_id, **values)
        await self._conn.execute(
            statement.on_conflict_do_update(index_elements=[_P.user_id], set_=values)
        )


class SqlPushTokens(_Repository):
    async def register(self, token: PushToken) -> None:
        values: dict[str, Any] = {
            "user_id": token.user_id,
            "platform": token.platform.value,
            "device_id": token.device_id,
            "app_version": token.app_version,
            "active": True,
            "updated_at": token.updated_at,
        }
        statement = insert(t.push_tokens).values(
            token=token.token, created_at=token.created_at, **values
        )
        await self._conn.execute(
            statement.on_conflict_do_update(index_elements=[_TOK.token], set_=values)
        )

    async def get(self, token: str) -> PushToken | None:
        row = (
            (await self._conn.execute(select(t.push_tokens).where(_TOK.token == token)))
            .mappings()
            .one_or_none()
        )
        return None if row is None else _token(row)

    async def remove(self, user_id: uuid.UUID, token: str) -> bool:
        result = await self._conn.execute(
            delete(t.push_tokens).where(_TOK.token == token, _TOK.user_id == user_id)
        )
        return bool(result.rowcount)

    async def active_of(self, user_id: uuid.UUID) -> list[PushToken]:
        query = (
            select(t.push_tokens)
            .where(_TOK.user_id == user_id, _TOK.active)
            .order_by(_TOK.created_at, _TOK.token)
        )
        return [_token(r) for r in (await self._conn.execute(query)).mappings()]

    async def active_of_users(
        self, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[PushToken]]:
        if not user_ids:
            return {}
        query = (
            select(t.push_tokens)
            .where(_TOK.user_id.in_(list(set(user_ids))), _TOK.active)
            .order_by(_TOK.created_at, _TOK.token)
        )
        found: dict[uuid.UUID, list[PushToken]] = {}
        for r in (await self._conn.execute(query)).mappings():
            found.setdefault(r["user_id"], []).append(_token(r))
        return found

    async def deactivate(self, tokens: Sequence[str], now: datetime) -> int:
        if not tokens:
            return 0
        result = await self._conn.execute(
            update(t.push_tokens)
            .where(and_(_TOK.token.in_(list(tokens)), _TOK.active))
            .values(active=False, updated_at=now)
        )
        return int(result.rowcount)
