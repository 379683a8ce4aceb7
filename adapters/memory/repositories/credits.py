"""The credit ledger in memory."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.credits import Hold, HoldStatus, LedgerEntry, Lot
from genstudio.core.model.errors import (
    ConcurrencyConflict,
    DuplicateEntry,
    InsufficientCredits,
    NotFound,
)
from genstudio.core.model.profiles import Profile


class InMemoryLedger(_Repo):
    async def lock_account(self, user_id: uuid.UUID) -> int:
        if user_id not in self._uow.view().profiles:
            raise NotFound(f"no profile {user_id}")
        await self._uow.acquire(("account", user_id))
        return await self.balance(user_id)

    async def lock_account_with_lots(self, user_id: uuid.UUID) -> tuple[Profile, list[Lot]]:
        await self.lock_account(user_id)
        return self._d.profiles[user_id], await self.lots(user_id)

    async def balance(self, user_id: uuid.UUID) -> int:
        profile = self._d.profiles.get(user_id)
        return profile.credits if profile else 0

    async def append(self, entry: LedgerEntry) -> None:
        d = self._d
        profile = d.profiles.get(entry.user_id)
        if profile is None:
            raise NotFound(f"no profile {entry.user_id}")
        entries = d.entries.setdefault(entry.user_id, [])
        if profile.credits + entry.amount < 0:
            raise InsufficientCredits(required=-entry.amount, available=profile.credits)
        if profile.credits + entry.amount != entry.balance_after:
            raise ConcurrencyConflict(
                f"balance of {entry.user_id} is {profile.credits + entry.amount} after the"
                f" entry, not {entry.balance_after}: the account was not locked"
            )
        if any(e.idempotency_key == entry.idempotency_key for e in entries):
            raise DuplicateEntry(f"entry {entry.idempotency_key!r} exists")
        entries.append(entry)
        d.profiles[entry.user_id] = msgspec.structs.replace(
            profile, credits=profile.credits + entry.amount
        )

    async def will_lock_account(self, user_id: uuid.UUID) -> None:
        return None  # no round trips to save: locked when asked

    async def append_deferred(self, entry: LedgerEntry) -> None:
        await self.append(entry)  # refused at once: allowed, and the strictest

    async def find(self, user_id: uuid.UUID, idempotency_key: str) -> LedgerEntry | None:
        for entry in self._d.entries.get(user_id, []):
            if entry.idempotency_key == idempotency_key:
                return entry
        return None

    async def entries(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[LedgerEntry]:
        ordered = sorted(
            self._d.entries.get(user_id, []), key=lambda e: (e.created_at, e.id.bytes), reverse=True
        )
        if before is not None:
            at, last = before
            ordered = [e for e in ordered if (e.created_at, e.id.bytes) < (at, last.bytes)]
        return ordered[:limit]

    async def lots(self, user_id: uuid.UUID) -> list[Lot]:
        return [
            lot for lot in self._d.lots.values() if lot.user_id == user_id and lot.remaining > 0
        ]

    async def lots_by_id(self, lot_ids: Collection[uuid.UUID]) -> list[Lot]:
        return [self._d.lots[i] for i in set(lot_ids) if i in self._d.lots]

    async def add_lot(self, lot: Lot) -> None:
        self._d.lots[lot.id] = lot

    async def set_lot_remaining(self, lot_id: uuid.UUID, remaining: int) -> None:
        lot = self._d.lots[lot_id]
        if not 0 <= remaining <= lot.amount:
            raise ValueError(f"lot {lot_id} cannot hold {remaining} of {lot.amount}")
        self._d.lots[lot_id] = msgspec.structs.replace(lot, remaining=remaining)

    async def set_lot_owed(self, lot_id: uuid.UUID, owed: int) -> None:
        if owed < 0:
            raise ValueError(f"lot {lot_id} cannot owe {owed}")
        lot = self._d.lots.get(lot_id)
        if lot is None:
            raise NotFound(f"no lot {lot_id}")
        self._d.lots[lot_id] = msgspec.structs.replace(lot, owed=owed)

    async def end_lot(self, lot_id: uuid.UUID, at: datetime) -> None:
        lot = self._d.lots.get(lot_id)
        if lot is not None and (lot.expires_at is None or lot.expires_at > at):
            self._d.lots[lot_id] = msgspec.structs.replace(lot, expires_at=at)

    async def reopen_lot(self, lot_id: uuid.UUID) -> None:
        lot = self._d.lots.get(lot_id)
        if lot is not None:
            self._d.lots[lot_id] = msgspec.structs.replace(lot, expires_at=None)

    async def add_hold(self, hold: Hold) -> None:
        self._d.holds[hold.id] = hold

    async def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        return self._d.holds.get(hold_id)

    async def close_hold(self, hold: Hold) -> None:
        stored = self._d.holds.get(hold.id)
        if stored is None or stored.status is not HoldStatus.OPEN:
            raise ConcurrencyConflict(f"hold {hold.id} is not open")
        self._d.holds[hold.id] = hold
