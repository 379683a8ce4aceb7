"""Small helpers the unit specs share: each runs one committed unit of work."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from genstudio.adapters.memory import (
    FakeClock,
    InMemoryGpuProvider,
    InMemoryJobQueue,
    InMemoryStorage,
    InMemoryUnitOfWorkFactory,
)
from genstudio.core.model.credits import EntryKind, Hold, LedgerEntry, Lot
from genstudio.core.model.events import JobEvent
from genstudio.core.model.idempotency import request_fingerprint
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.media import MediaAsset
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.model.queueing import QueuePolicy, RetryPolicy
from genstudio.core.services import credits as svc
from genstudio.core.services.generation.submit import submit_image
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.ports.ai import PromptEnhancer
from genstudio.ports.unit_of_work import UnitOfWorkFactory


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """What the store says about one user's credits, read in one unit of work."""

    balance: int
    entries: list[LedgerEntry]
    lots: dict[uuid.UUID, Lot]

    def of_kind(self, kind: EntryKind) -> list[LedgerEntry]:
        return [e for e in self.entries if e.kind is kind]


async def open_account(factory: UnitOfWorkFactory, user_id: uuid.UUID | None = None) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user_id, f"{user_id.hex[:8]}@example.com")
        await uow.commit()
    return user_id


async def add(
    factory: UnitOfWorkFactory,
    user_id: uuid.UUID,
    amount: int,
    now: datetime,
    *,
    kind: EntryKind = EntryKind.PURCHASE,
    expires_at: datetime | None = None,
    key: str | None = None,
) -> LedgerEntry:
    async with factory() as uow:
        entry = await svc.add_credits(
            uow,
            user_id=user_id,
            amount=amount,
            kind=kind,
            reference=f"test {kind}",
            idempotency_key=key or f"test:{uuid.uuid4()}",
            now=now,
            expires_at=expires_at,
        )
        await uow.commit()
    return entry


async def hold(factory: UnitOfWorkFactory, user_id: uuid.UUID, amount: int, now: datetime) -> Hold:
    async with factory() as uow:
        placed = await svc.place_hold(
            uow, user_id=user_id, amount=amount, reference=f"job:{uuid.uuid4()}", now=now
        )
        await uow.commit()
    return placed


async def settle(factory: UnitOfWorkFactory, hold_id: uuid.UUID, now: datetime) -> bool:
    async with factory() as uow:
        done = await svc.settle_hold(uow, hold_id, now)
        await uow.commit()
    return done


async def release(factory: UnitOfWorkFactory, hold_id: uuid.UUID, now: datetime) -> bool:
    async with factory() as uow:
        done = await svc.release_hold(uow, hold_id, now)
        await uow.commit()
    return done


async def refund(factory: UnitOfWorkFactory, hold_id: uuid.UUID, now: datetime) -> LedgerEntry:
    async with factory() as uow:
        entry = await svc.refund_settled(uow, hold_id=hold_id, reason="support", now=now)
        await uow.commit()
    return entry


async def get_hold(factory: UnitOfWorkFactory, hold_id: uuid.UUID) -> Hold | None:
    async with factory() as uow:
        return await uow.ledger.get_hold(hold_id)


async def account(factory: UnitOfWorkFactory, user_id: uuid.UUID) -> Account:
    async with factory() as uow:
        return Account(
            balance=await uow.ledger.balance(user_id),
            entries=await uow.ledger.entries(user_id, limit=100_000),
            lots={lot.id: lot for lot in await uow.ledger.lots(user_id)},
        )


# the generation use cases, wired on memory adapters ---------------------------------

IMAGE_PATH = "/v1/generate/image"


#: fast, deterministic retries for specs: 3 attempts for images, backoff up to 1s
POLICY = QueuePolicy(retry=RetryPolicy(base_delay=0.5, max_delay=1.0))


class Studio:
    """One in-memory deployment: the store, a queue, a clock, a GPU and storage."""

    def __init__(self, gpu: InMemoryGpuProvider | None = None) -> None:
        self.factory = InMemoryUnitOfWorkFactory()
        self.queue = InMemoryJobQueue()
        self.clock = FakeClock()
        self.gpu = gpu or InMemoryGpuProvider()
        self.storage = InMemoryStorage()
        self.processor = self.processor_for(self.gpu)

    def processor_for(
        self,
        gpu: InMemoryGpuProvider,
        *,
        timeout: float = 600.0,
        policy: QueuePolicy = POLICY,
    ) -> JobProcessor:
        """A worker on ``gpu``; ``timeout`` is every kind's, unless ``policy`` names
        kinds of its own."""
        timeouts = msgspec.structs.replace(policy.timeouts, default_seconds=timeout)
        return JobProcessor(
            self.factory,
            gpu,
            self.storage,
            self.clock,
            DEFAULT_CATALOG,
            policy=msgspec.structs.replace(policy, timeouts=timeouts),
            poll_interval=1.0 if timeout >= 600 else 2.0,
        )

    def use_gpu(self, gpu: InMemoryGpuProvider) -> None:
        self.gpu = gpu
        self.processor = self.processor_for(gpu)

    async def deliver(self, job_id: uuid.UUID, processor: JobProcessor | None = None) -> Job:
        """A wake-up for the job's kind, handled as the worker's task does
        (``JobProcessor.process_next``): the job as that left it, or as it is when
        nothing was claimable (not due yet, held by a live worker, finished)."""
        kind = (await self.job(job_id)).kind.value
        ran = await (processor or self.processor).process_next(kind)
        return ran if ran is not None and ran.id == job_id else await self.job(job_id)

    async def drive(self, job_id: uuid.UUID, *, rounds: int = 10) -> Job | None:
        """Deliver wake-ups for the job, waiting out each retry's backoff, until it ends."""
        job: Job | None = None
        for _ in range(rounds):
            job = await self.deliver(job_id)
            if job.status.terminal:
                return job
            if job.next_attempt_at is not None:
                self.clock.advance((job.next_attempt_at - self.clock.now()).total_seconds() + 0.001)
        return job

    async def user_with(self, credits: int) -> uuid.UUID:
        user_id = await open_account(self.factory)
        if credits:
            await add(self.factory, user_id, credits, self.clock.now())
        return user_id

    async def submit(
        self,
        user_id: uuid.UUID,
        params: ImageParams | None = None,
        *,
        key: str | None = None,
        model_id: str = "flux-schnell",
        enhancer: PromptEnhancer | None = None,
    ) -> Submitted:
        params = params or ImageParams(prompt="a red fox in the snow")
        body = msgspec.json.encode({"model": model_id, "params": params})
        return await submit_image(
            self.factory,
            self.queue,
            self.clock,
            DEFAULT_CATALOG,
            user_id=user_id,
            email=None,
            model_id=model_id,
            params=params,
            idempotency_key=key,
            request_hash=request_fingerprint("POST", IMAGE_PATH, body),
            enhancer=enhancer,
        )

    async def submitted_job(self, user_id: uuid.UUID, params: ImageParams | None = None) -> Job:
        result = await self.submit(user_id, params)
        assert result.job_id is not None
        return await self.job(result.job_id)

    async def job(self, job_id: uuid.UUID) -> Job:
        async with self.factory() as uow:
            job = await uow.jobs.get(job_id)
        assert job is not None
        return job

    async def jobs_of(self, user_id: uuid.UUID) -> list[Job]:
        async with self.factory() as uow:
            every = await uow.jobs.list_by_status(frozenset(JobStatus), limit=100_000)
        return [j for j in every if j.user_id == user_id]

    async def media_of(self, job_id: uuid.UUID) -> list[MediaAsset]:
        async with self.factory() as uow:
            return await uow.media.list_for_job(job_id)

    async def events(self, job_id: uuid.UUID) -> list[JobEvent]:
        async with self.factory() as uow:
            return await uow.job_events.list_for_job(job_id)

    async def hold_of(self, job: Job) -> Hold:
        assert job.hold_id is not None
        hold = await get_hold(self.factory, job.hold_id)
        assert hold is not None
        return hold

    async def account(self, user_id: uuid.UUID) -> Account:
        return await account(self.factory, user_id)


_T = TypeVar("_T")


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to the end on a fresh event loop: the state machines' rules are
    synchronous (hypothesis calls them), the in-memory adapters are async."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)
