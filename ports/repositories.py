"""Unit of work and repositories: the core's only view of persistence.

A unit of work is an async context manager. Everything done through its
repositories becomes visible to others only when ``commit()`` runs; leaving the
block without a commit (or with an exception) rolls everything back.

A write whose method returns nothing (``add``, ``add_hold``, ``set_lot_remaining``,
...) may be sent later, with the next statement or the commit: its errors (NotFound
for a missing parent row, ValueError for a lot that cannot hold the amount) are
raised then, at the latest by ``commit()``, and nothing is committed. Reads always
see the writes before them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from core.credits import Hold, LedgerEntry, Lot
from core.entitlements import AllowanceGrant, Entitlement, StoreTransaction
from core.idempotency import IdempotencyRecord
from core.job_events import JobEvent
from core.jobs import Job, JobStatus
from core.media import MediaAsset
from core.products import Store
from core.profiles import Profile, SubscriptionTier
from core.queueing import QueuePolicy, QueueStats


class ProfileRepository(Protocol):
    async def get(self, user_id: uuid.UUID) -> Profile | None: ...

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        """Return the user's profile, creating it (zero credits, free tier) if missing.
        A profile made without an email (by an operator's grant, a store notification)
        takes ``email`` when one is given."""
        ...

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        """Store what the user's entitlements say (tier, status, period end)."""
        ...


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


class JobRepository(Protocol):
    async def add(self, job: Job) -> None: ...

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        """``lock=True`` holds the row until the unit of work ends."""
        ...

    async def update(self, job: Job) -> Job:
        """Store ``job`` (every field, ``submitted_at`` included) if its version is still
        the stored one; return it with version+1.

        Raises ConcurrencyConflict if another writer updated the job first.
        """
        ...

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]: ...

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        """The job a worker should take next, row-locked until the unit of work ends.

        Candidates: jobs of ``kind`` that are due (queued, past ``next_attempt_at``)
        or abandoned (dispatched/running with an expired lease). Rows locked by
        another unit of work are skipped, not waited for. A due job is skipped while
        its owner already has ``policy.per_user_in_flight`` jobs in flight (counted
        exactly, even under concurrent claims). Highest ``policy.priority.score``
        first, then oldest.
        """
        ...

    async def needing_wakeup(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> list[Job]:
        """Due jobs whose last wake-up message was sent before ``stale_before``, before
        their retry time (it was for the attempt before), or never; and abandoned jobs:
        what the reconciler re-sends to the queue."""
        ...

    async def mark_enqueued(self, job_ids: list[uuid.UUID], at: datetime | None) -> None:
        """Record that the jobs' wake-ups were sent at ``at`` (not a domain change: no
        version bump). ``None`` forgets it, as if none had been sent: a wake-up that
        never reached the queue, which the next ``needing_wakeup`` returns again."""
        ...

    async def dead_letters(self, *, limit: int) -> list[Job]:
        """Dead-lettered jobs, newest first."""
        ...

    async def stats(self, *, now: datetime, windows: dict[str, timedelta]) -> QueueStats:
        """The queue as operators see it: per kind and priority, the queued jobs, those
        of them due, and how long the longest-waiting due job has waited since it became
        due (``next_attempt_at``, else ``created_at``; 0 when none is due); per kind, the
        jobs in flight, the dead letters, and those that succeeded and failed (last
        changed) within each window."""
        ...


class JobEventRepository(Protocol):
    async def add(self, event: JobEvent) -> None: ...

    async def list_for_job(self, job_id: uuid.UUID) -> list[JobEvent]:
        """Oldest first."""
        ...


class MediaRepository(Protocol):
    async def add(self, asset: MediaAsset) -> None: ...

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None: ...

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]: ...


class IdempotencyRepository(Protocol):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        """Claim the key until the unit of work ends. False if another unit holds it."""
        ...

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None: ...

    async def claim(self, user_id: uuid.UUID, key: str) -> tuple[bool, IdempotencyRecord | None]:
        """``try_lock`` then, if it held, ``get`` (read under the lock), as one step:
        ``(False, None)`` while another unit holds the key."""
        ...

    async def add(self, record: IdempotencyRecord) -> None:
        """Store the answer to replay (the caller holds the key). Raises DuplicateEntry
        if the key is stored: here, with a later call, or at the latest by ``commit``
        (then the unit can only roll back)."""
        ...


class PurchaseRepository(Protocol):
    """Store transactions, entitlements, allowance grants and seen store notifications."""

    async def lock(self, store: Store, key: str) -> None:
        """Serialize on one purchase (a transaction or subscription id) until the unit
        of work ends. Take it before ``ledger.lock_account``."""
        ...

    async def get_transaction(
        self, store: Store, transaction_id: str
    ) -> StoreTransaction | None: ...

    async def add_transaction(self, transaction: StoreTransaction) -> None:
        """Raises DuplicateEntry if the store already has that transaction id."""
        ...

    async def update_transaction(self, transaction: StoreTransaction) -> None: ...

    async def unacknowledged(
        self, store: Store, since: datetime, *, limit: int
    ) -> list[StoreTransaction]:
        """Transactions the store was not yet told about, created at or after ``since``."""
        ...

    async def get_entitlement(
        self, store: Store, original_transaction_id: str
    ) -> Entitlement | None: ...

    async def save_entitlement(self, entitlement: Entitlement) -> None:
        """Insert or replace the entitlement of (store, original transaction id)."""
        ...

    async def entitlements_of(self, user_id: uuid.UUID) -> list[Entitlement]: ...

    async def due_entitlements(self, now: datetime, *, limit: int) -> list[Entitlement]:
        """Entitled ones whose next allowance month has started (``next_allowance_at <= now``)."""
        ...

    async def grants(self, store: Store, original_transaction_id: str) -> list[AllowanceGrant]:
        """The subscription's allowance grants, oldest month first."""
        ...

    async def add_grant(self, grant: AllowanceGrant) -> None:
        """Raises DuplicateEntry if that month was granted already."""
        ...

    async def update_grant(self, grant: AllowanceGrant) -> None: ...

    async def record_notification(
        self, store: Store, notification_id: str, kind: str, received_at: datetime
    ) -> bool:
        """Remember a store notification; False if it was seen before (a redelivery).

        A concurrent delivery of the same id waits for the first unit of work to end.
        """
        ...


class UploadRepository(Protocol):
    """Uploads stored ahead of the transaction that records them (an intent log).

    An upload is *expected* (committed on its own) before its bytes are stored, and
    *settled* in the transaction that records it as media, or once it is deleted
    again; one still expected long after (the process died in between) is an orphan
    for the reconciler to delete.
    """

    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        """Idempotent: expecting a key again keeps the first time."""
        ...

    async def settle(self, storage_keys: Sequence[str]) -> None:
        """Forget the keys (unknown keys are ignored)."""
        ...

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        """Keys expected before ``before`` and never settled, oldest first."""
        ...


class UnitOfWork(Protocol):
    profiles: ProfileRepository
    ledger: LedgerRepository
    jobs: JobRepository
    job_events: JobEventRepository
    media: MediaRepository
    idempotency: IdempotencyRepository
    purchases: PurchaseRepository
    uploads: UploadRepository

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
