"""The credit ledger: entries, lots and holds."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from genstudio.core.model.credits import Hold, LedgerEntry, Lot
from genstudio.core.model.profiles import Profile


class LedgerRepository(Protocol):
    async def lock_account(self, user_id: uuid.UUID) -> int:
        """Lock the user's account until the unit of work ends; return its balance.

        Concurrent units of work that lock the same account run one after the
        other. Raises NotFound if the user has no profile.
        """
        ...

    async def will_lock_account(self, user_id: uuid.UUID) -> None:
        """Announce ``lock_account_with_lots(user_id)`` as coming after the next call:
        an adapter may take the lock and read the lots in that call's round trip (so
        the account is locked then, even if it is not asked for after all), or do
        nothing until it is asked. Take no other lock between the two."""
        ...

    async def lock_account_with_lots(self, user_id: uuid.UUID) -> tuple[Profile, list[Lot]]:
        """``lock_account`` then ``lots``, read under the lock, as one step: the locked
        profile (its ``credits`` are the balance) and the lots with credits left."""
        ...

    async def balance(self, user_id: uuid.UUID) -> int: ...

    async def append(self, entry: LedgerEntry) -> None:
        """Append an entry and apply its amount to the account balance.

        Raises InsufficientCredits if the balance would go below zero,
        ConcurrencyConflict if the balance it leaves is not the entry's
        ``balance_after`` (the caller did not hold the account's lock), and
        DuplicateEntry if the user already has an entry with that idempotency key;
        on any of them the balance is left as it was.
        """
        ...

    async def append_deferred(self, entry: LedgerEntry) -> None:
        """``append``, for a unit of work that will not go on after a refusal: the
        adapter may send it with a later statement or with the commit (one round trip
        fewer). The same refusals, raised by this call, a later call, or at the latest
        by ``commit``; once one is raised, the unit can only roll back."""
        ...

    async def find(self, user_id: uuid.UUID, idempotency_key: str) -> LedgerEntry | None: ...

    async def entries(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[LedgerEntry]:
        """Newest first; ``before`` is the (created_at, id) of the last entry already seen."""
        ...

    async def lots(self, user_id: uuid.UUID) -> list[Lot]:
        """The user's lots with credits remaining, in no particular order."""
        ...

    async def lots_by_id(self, lot_ids: Collection[uuid.UUID]) -> list[Lot]:
        """The lots with these ids, in no particular order, whatever they have left or
        owe (a lot with none left is not among ``lots``); ids of no lot are left out."""
        ...

    async def add_lot(self, lot: Lot) -> None: ...

    async def set_lot_remaining(self, lot_id: uuid.UUID, remaining: int) -> None:
        """Raises NotFound for no such lot, ValueError outside 0..amount: here, with a
        later call, or at the latest by ``commit`` (then the unit can only roll back)."""
        ...

    async def set_lot_owed(self, lot_id: uuid.UUID, owed: int) -> None:
        """Record what the lot owes (``Lot.owed``). Raises ValueError below zero and
        NotFound for no such lot: here, with a later call, or at the latest by
        ``commit`` (then the unit can only roll back)."""
        ...

    async def end_lot(self, lot_id: uuid.UUID, at: datetime) -> None:
        """Make the lot expire at ``at`` (or keep an earlier expiry): credits that come
        back to it later (a released hold) expire at once instead of reviving it."""
        ...

    async def reopen_lot(self, lot_id: uuid.UUID) -> None:
        """Undo ``end_lot`` (a refund that ended a purchase was reversed): the lot never
        expires again, and credits that come back to it stay."""
        ...

    async def add_hold(self, hold: Hold) -> None: ...

    async def get_hold(self, hold_id: uuid.UUID) -> Hold | None: ...

    async def close_hold(self, hold: Hold) -> None:
        """Store a settled or released hold. Raises ConcurrencyConflict unless it was open."""
        ...
