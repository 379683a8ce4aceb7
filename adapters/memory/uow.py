"""Repositories and a unit of work over plain dicts.

Isolation: a unit of work reads and writes a private copy of the store and swaps
it in on commit. Locks (accounts, job rows, idempotency keys) are asyncio locks
held until the unit of work ends, so concurrent units behave as they would on
Postgres: the second one waits, then sees the first one's committed state.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import msgspec

from adapters.memory.purchases import InMemoryPurchases
from core.credits import Hold, HoldStatus, LedgerEntry, Lot
from core.entitlements import AllowanceGrant, Entitlement, StoreTransaction
from core.errors import ConcurrencyConflict, DuplicateEntry, InsufficientCredits, NotFound
from core.idempotency import IdempotencyRecord
from core.job_events import JobEvent
from core.jobs import Job, JobStatus
from core.media import MediaAsset
from core.profiles import Profile, SubscriptionTier
from core.queueing import KindStats, QueueDepth, QueuePolicy, QueueStats


@dataclass
class _Data:
    profiles: dict[uuid.UUID, Profile] = field(default_factory=dict)
    entries: dict[uuid.UUID, list[LedgerEntry]] = field(default_factory=dict)
    lots: dict[uuid.UUID, Lot] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    jobs: dict[uuid.UUID, Job] = field(default_factory=dict)
    media: dict[uuid.UUID, MediaAsset] = field(default_factory=dict)
    idempotency: dict[tuple[uuid.UUID, str], IdempotencyRecord] = field(default_factory=dict)
    store_transactions: dict[tuple[str, str], StoreTransaction] = field(default_factory=dict)
    entitlements: dict[tuple[str, str], Entitlement] = field(default_factory=dict)
    allowance_grants: dict[tuple[str, str, datetime], AllowanceGrant] = field(default_factory=dict)
    store_notifications: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    job_events: dict[uuid.UUID, JobEvent] = field(default_factory=dict)
    enqueued_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    upload_intents: dict[str, tuple[uuid.UUID, datetime]] = field(default_factory=dict)


class InMemoryStore:
    """The committed state, shared by every unit of work made over it."""

    def __init__(self) -> None:
        self.data = _Data()
        self._locks: dict[object, asyncio.Lock] = {}
        self._commit_lock = asyncio.Lock()

    def lock_for(self, key: object) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


class _Repo:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def _d(self) -> _Data:
        return self._uow.view()


class InMemoryProfiles(_Repo):
    async def get(self, user_id: uuid.UUID) -> Profile | None:
        return self._d.profiles.get(user_id)

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        await self._uow.acquire(("profile", user_id))
        profile = self._d.profiles.get(user_id)
        if profile is None:
            profile = Profile(
                id=user_id,
                email=email,
                credits=0,
                subscription_tier=SubscriptionTier.FREE,
                created_at=datetime.now(UTC),
            )
            self._d.profiles[user_id] = profile
        elif profile.email is None and email is not None:
            profile = msgspec.structs.replace(profile, email=email)
            self._d.profiles[user_id] = profile
        return profile

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        profile = self._d.profiles.get(user_id)
        if profile is None:
            raise NotFound(f"no profile {user_id}")
        self._d.profiles[user_id] = msgspec.structs.replace(
            profile,
            subscription_tier=tier,
            subscription_status=status,
            subscription_expires_at=expires_at,
        )


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


class InMemoryJobs(_Repo):
    async def add(self, job: Job) -> None:
        self._d.jobs[job.id] = job

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        if lock:
            await self._uow.acquire(("job", job_id))
        return self._d.jobs.get(job_id)

    async def update(self, job: Job) -> Job:
        stored = self._d.jobs.get(job.id)
        if stored is None or stored.version != job.version:
            raise ConcurrencyConflict(f"job {job.id} changed underneath")
        job = msgspec.structs.replace(job, version=job.version + 1)
        self._d.jobs[job.id] = job
        return job

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]:
        found = [j for j in self._d.jobs.values() if j.status in statuses]
        return sorted(found, key=lambda j: j.created_at)[:limit]

    def _locked_by_other(self, job_id: uuid.UUID) -> bool:
        key = ("job", job_id)
        return key not in self._uow.held and self._uow.store.lock_for(key).locked()

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        candidates = [
            j
            for j in self._d.jobs.values()
            if j.kind.value == kind and (j.is_due(now) or j.is_abandoned(now))
        ]
        candidates.sort(key=lambda j: (-policy.priority.score(j, now), j.created_at))
        for job in candidates:
            if self._locked_by_other(job.id):
                continue  # SKIP LOCKED
            await self._uow.acquire(("job", job.id))
            job = self._d.jobs[job.id]  # re-read under the lock
            if not (job.is_due(now) or job.is_abandoned(now)):
                continue
            if job.status is JobStatus.QUEUED:
                # count the owner's jobs in flight under a per-user lock, so two
                # concurrent claims cannot both take the last slot
                await self._uow.acquire(("in-flight", job.user_id))
                in_flight = sum(
                    1
                    for j in self._d.jobs.values()
                    if j.user_id == job.user_id and j.status in _IN_FLIGHT
                )
                if in_flight >= policy.per_user_in_flight:
                    continue
            return job
        return None

    async def needing_wakeup(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> list[Job]:
        d = self._d
        found = [
            j
            for j in d.jobs.values()
            if (j.is_due(now) and _wake_up_stale(d.enqueued_at.get(j.id), j, stale_before))
            or j.is_abandoned(now)
        ]
        return sorted(found, key=lambda j: j.created_at)[:limit]

    async def mark_enqueued(self, job_ids: list[uuid.UUID], at: datetime | None) -> None:
        for job_id in job_ids:
            if at is None:
                self._d.enqueued_at.pop(job_id, None)
            else:
                self._d.enqueued_at[job_id] = at

    async def dead_letters(self, *, limit: int) -> list[Job]:
        found = [j for j in self._d.jobs.values() if j.dead_lettered_at is not None]
        return sorted(found, key=lambda j: j.dead_lettered_at or _EPOCH, reverse=True)[:limit]

    async def stats(self, *, now: datetime, windows: dict[str, timedelta]) -> QueueStats:
        jobs = list(self._d.jobs.values())
        depths: dict[tuple[str, int], list[Job]] = {}
        for j in jobs:
            if j.status is JobStatus.QUEUED:
                depths.setdefault((j.kind.value, j.priority), []).append(j)
        kinds = sorted({j.kind.value for j in jobs})
        return QueueStats(
            depths=[
                QueueDepth(
                    kind=kind,
                    priority=priority,
                    queued=len(group),
                    due=sum(1 for j in group if j.is_due(now)),
                    oldest_waiting_seconds=max(
                        (
                            (now - (j.next_attempt_at or j.created_at)).total_seconds()
                            for j in group
                            if j.is_due(now)
                        ),
                        default=0.0,
                    ),
                )
                for (kind, priority), group in sorted(depths.items())
            ],
            kinds=[
                KindStats(
                    kind=kind,
                    in_flight=sum(
                        1 for j in jobs if j.kind.value == kind and j.status in _IN_FLIGHT
                    ),
                    dead_letters=sum(
                        1 for j in jobs if j.kind.value == kind and j.dead_lettered_at is not None
                    ),
                    succeeded={
                        label: sum(
                            1
                            for j in jobs
                            if j.kind.value == kind
                            and j.status is JobStatus.SUCCEEDED
                            and j.updated_at >= now - span
                        )
                        for label, span in windows.items()
                    },
                    failed={
                        label: sum(
                            1
                            for j in jobs
                            if j.kind.value == kind
                            and j.status is JobStatus.FAILED
                            and j.updated_at >= now - span
                        )
                        for label, span in windows.items()
                    },
                )
                for kind in kinds
            ],
        )


class InMemoryJobEvents(_Repo):
    async def add(self, event: JobEvent) -> None:
        self._d.job_events[event.id] = event

    async def list_for_job(self, job_id: uuid.UUID) -> list[JobEvent]:
        return sorted(
            (e for e in self._d.job_events.values() if e.job_id == job_id),
            key=lambda e: e.created_at,
        )


class InMemoryMedia(_Repo):
    async def add(self, asset: MediaAsset) -> None:
        self._d.media[asset.id] = asset

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None:
        return self._d.media.get(asset_id)

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]:
        return sorted(
            (m for m in self._d.media.values() if m.job_id == job_id), key=lambda m: m.created_at
        )


class InMemoryIdempotency(_Repo):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        lock = self._uow.store.lock_for(("idempotency", user_id, key))
        if ("idempotency", user_id, key) in self._uow.held:
            return True
        if lock.locked():
            return False
        await self._uow.acquire(("idempotency", user_id, key))
        return True

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        return self._d.idempotency.get((user_id, key))

    async def claim(self, user_id: uuid.UUID, key: str) -> tuple[bool, IdempotencyRecord | None]:
        if not await self.try_lock(user_id, key):
            return False, None
        return True, await self.get(user_id, key)

    async def add(self, record: IdempotencyRecord) -> None:
        if (record.user_id, record.key) in self._d.idempotency:
            raise DuplicateEntry(f"idempotency key {record.key!r} exists")
        self._d.idempotency[(record.user_id, record.key)] = record


class InMemoryUploads(_Repo):
    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        self._d.upload_intents.setdefault(storage_key, (user_id, at))

    async def settle(self, storage_keys: Sequence[str]) -> None:
        for key in storage_keys:
            self._d.upload_intents.pop(key, None)

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        due = [(at, key) for key, (_, at) in self._d.upload_intents.items() if at < before]
        return [key for _, key in sorted(due)[:limit]]


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.held: dict[object, asyncio.Lock] = {}
        self._work: _Data | None = None
        self._base: _Data | None = None
        self.committed = False
        self.profiles = InMemoryProfiles(self)
        self.ledger = InMemoryLedger(self)
        self.jobs = InMemoryJobs(self)
        self.job_events = InMemoryJobEvents(self)
        self.media = InMemoryMedia(self)
        self.idempotency = InMemoryIdempotency(self)
        self.purchases = InMemoryPurchases(self)
        self.uploads = InMemoryUploads(self)

    def view(self) -> _Data:
        if self._work is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._work

    async def acquire(self, key: object) -> None:
        """Take a row lock until the end; afterwards re-read what others committed."""
        if key in self.held:
            return
        lock = self.store.lock_for(key)
        await lock.acquire()
        self.held[key] = lock
        self._refresh()

    def _refresh(self) -> None:
        # like READ COMMITTED after a lock wait: take the latest committed rows we
        # have not touched ourselves
        assert self._work is not None and self._base is not None
        latest = self.store.data
        for name in vars(latest):
            mine: dict[object, object] = getattr(self._work, name)
            base: dict[object, object] = getattr(self._base, name)
            theirs: dict[object, object] = getattr(latest, name)
            for k, v in theirs.items():
                if mine.get(k, _MISSING) == base.get(k, _MISSING):
                    mine[k] = copy.deepcopy(v)
                    base[k] = copy.deepcopy(v)

    async def __aenter__(self) -> Self:
        self._base = copy.deepcopy(self.store.data)
        self._work = copy.deepcopy(self._base)
        self.committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._work = None
        self._base = None
        self._release()

    def _release(self) -> None:
        # like Postgres: row and advisory locks end with the transaction
        for lock in self.held.values():
            lock.release()
        self.held.clear()

    async def commit(self) -> None:
        work, base = self.view(), self._base
        assert base is not None
        latest = self.store.data
        # write back only what this unit changed, over what others committed since
        for name in vars(latest):
            mine: dict[object, object] = getattr(work, name)
            before: dict[object, object] = getattr(base, name)
            target: dict[object, object] = getattr(latest, name)
            for k in set(mine) | set(before):
                if k not in mine:
                    target.pop(k, None)
                elif mine[k] != before.get(k, _MISSING):
                    target[k] = copy.deepcopy(mine[k])
        self._base = copy.deepcopy(latest)
        self._work = copy.deepcopy(latest)
        self.committed = True
        self._release()

    async def rollback(self) -> None:
        self._work = copy.deepcopy(self.store.data)
        self._base = copy.deepcopy(self.store.data)
        self._release()


_MISSING = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IN_FLIGHT = frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING})


class InMemoryUnitOfWorkFactory:
    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)


def _wake_up_stale(woken: datetime | None, job: Job, stale_before: datetime) -> bool:
    """Whether a due job needs another wake-up: never woken, woken before
    ``stale_before``, or woken before its retry time (that wake-up was for the attempt
    before)."""
    if woken is None or woken < stale_before:
        return True
    return job.next_attempt_at is not None and woken < job.next_attempt_at
