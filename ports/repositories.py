"""Unit of work and repositories: the core's only view of persistence.

A unit of work is an async context manager. Everything done through its
repositories becomes visible to others only when ``commit()`` runs; leaving the
block without a commit (or with an exception) rolls everything back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from core.credits import Hold, LedgerEntry, Lot
from core.idempotency import IdempotencyRecord
from core.jobs import Job, JobStatus
from core.media import MediaAsset
from core.profiles import Profile


class ProfileRepository(Protocol):
    async def get(self, user_id: uuid.UUID) -> Profile | None: ...

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        """Return the user's profile, creating it (zero credits, free tier) if missing."""
        ...


class LedgerRepository(Protocol):
    async def lock_account(self, user_id: uuid.UUID) -> int:
        """Lock the user's account until the unit of work ends; return its balance.

        Concurrent units of work that lock the same account run one after the
        other. Raises NotFound if the user has no profile.
        """
        ...

    async def balance(self, user_id: uuid.UUID) -> int: ...

    async def append(self, entry: LedgerEntry) -> None:
        """Append an entry and apply its amount to the account balance.

        Raises InsufficientCredits if the balance would go below zero, and
        DuplicateEntry if the user already has an entry with that idempotency key.
        """
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

    async def add_lot(self, lot: Lot) -> None: ...

    async def set_lot_remaining(self, lot_id: uuid.UUID, remaining: int) -> None: ...

    async def add_hold(self, hold: Hold) -> None: ...

    async def get_hold(self, hold_id: uuid.UUID) -> Hold | None: ...

    async def close_hold(self, hold: Hold) -> None:
        """Store a settled or released hold. Raises ConcurrencyConflict unless it was open."""
        ...


class JobRepository(Protocol):
    async def add(self, job: Job) -> None: ...

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        """``lock=True`` holds the row until the unit of work ends."""
        ...

    async def update(self, job: Job) -> Job:
        """Store ``job`` if its version is still the stored one; return it with version+1.

        Raises ConcurrencyConflict if another writer updated the job first.
        """
        ...

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]: ...


class MediaRepository(Protocol):
    async def add(self, asset: MediaAsset) -> None: ...

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None: ...

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]: ...


class IdempotencyRepository(Protocol):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        """Claim the key until the unit of work ends. False if another unit holds it."""
        ...

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None: ...

    async def add(self, record: IdempotencyRecord) -> None: ...


class UnitOfWork(Protocol):
    profiles: ProfileRepository
    ledger: LedgerRepository
    jobs: JobRepository
    media: MediaRepository
    idempotency: IdempotencyRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless ``commit()`` ran."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
