"""genstudio on the in-memory adapters, for another team's tests: ``MemoryApplication``.

One object holds a whole deployment: the store (``uow_factory``, genstudio's memory
unit of work: transactions, account locks and idempotency as the Postgres adapter
has them), the job queue, a ``FakeClock`` that moves only when told to, a
``ScriptedGpu``, in-memory media storage, the model catalog and the store products,
and the worker (``processor``) that runs queued jobs. Your own use cases take these
ports as genstudio's do; ``users`` builds accounts to start from.

Jobs run only when you say so: ``await app.run_jobs()`` is the worker taking every
wake-up until nothing is due, the clock moved over each retry's back-off. Nothing
runs in the background, so a test reads the same every time.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.adapters.memory import (
    FakeClock,
    InMemoryJobQueue,
    InMemoryStorage,
    InMemoryUnitOfWorkFactory,
)
from genstudio.core.model.credits import LedgerEntry
from genstudio.core.model.events import JobEvent
from genstudio.core.model.idempotency import request_fingerprint
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.media import MediaAsset
from genstudio.core.model.pricing import DEFAULT_CATALOG, Catalog, ModelKind
from genstudio.core.model.purchases.products import (
    DEFAULT_PRODUCTS,
    ProductCatalog,
    ProductKind,
    Store,
    add_months,
)
from genstudio.core.model.purchases.store_events import EntitlementStatus, SubscriptionSnapshot
from genstudio.core.model.queueing import QueuePolicy, RetryPolicy
from genstudio.core.services.credits import grant_credits
from genstudio.core.services.generation.submit import submit_image
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.purchases.claims import Redemption, redeem_purchase
from genstudio.ports.gpu import GpuProvider
from genstudio.testing.gpu import ScriptedGpu

#: genstudio's retries, with back-offs short enough to read in a test (3 attempts for
#: an image, back-off up to a second of the fake clock)
TEST_POLICY = QueuePolicy(retry=RetryPolicy(base_delay=0.5, max_delay=1.0))

IMAGE_PATH = "/v1/generate/image"


class Users:
    """Builders for the accounts a test starts from (through genstudio's own use
    cases: what they make is what the app would have made)."""

    def __init__(self, app: MemoryApplication) -> None:
        self._app = app

    async def new(self, *, email: str | None = None) -> uuid.UUID:
        """A signed-up user with no credits."""
        user_id = uuid.uuid4()
        async with self._app.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email or f"{user_id.hex[:8]}@example.com")
            await uow.commit()
        return user_id

    async def with_credits(
        self, credits: int, *, user_id: uuid.UUID | None = None, expires_at: datetime | None = None
    ) -> uuid.UUID:
        """A user holding ``credits`` (an operator's grant, as ``genstudio credits
        grant`` makes; ``expires_at`` for credits that lapse)."""
        user_id = user_id or await self.new()
        if credits:
            await grant_credits(
                self._app.uow_factory,
                user_id=user_id,
                amount=credits,
                reference="genstudio.testing",
                idempotency_key=f"testing:{uuid.uuid4()}",
                now=self._app.clock.now(),
                expires_at=expires_at,
            )
        return user_id

    async def subscribed(
        self,
        product_id: str = "pro_monthly",
        *,
        user_id: uuid.UUID | None = None,
        store: Store = Store.APPLE,
    ) -> uuid.UUID:
        """A user whose subscription (a plan of ``products``: ``pro_monthly``,
        ``premium_yearly``, ...) the store just confirmed: active for one period from
        now, auto-renewing, its first month's allowance granted, the profile on the
        plan's tier (as a verified purchase through ``POST /v1/purchases/*`` does)."""
        user_id = user_id or await self.new()
        await self.redeem_subscription(user_id, product_id, store=store)
        return user_id

    async def redeem_subscription(
        self, user_id: uuid.UUID, product_id: str, *, store: Store = Store.APPLE
    ) -> Redemption:
        product = self._app.products.get(product_id)
        if product is None or product.kind is not ProductKind.SUBSCRIPTION:
            plans = [p.id for p in self._app.products.all() if p.kind is ProductKind.SUBSCRIPTION]
            raise ValueError(f"{product_id!r} is not a plan; the plans: {plans}")
        store_product_id = product.store_id(store)
        assert store_product_id is not None, f"{product_id} is not sold on {store}"
        assert product.period is not None
        now = self._app.clock.now()
        original = f"testing-{uuid.uuid4().hex[:16]}"
        event = SubscriptionSnapshot(
            store=store,
            occurred_at=now,
            original_transaction_id=original,
            transaction_id=original,
            store_product_id=store_product_id,
            user_id=user_id,
            status=EntitlementStatus.ACTIVE,
            auto_renew=True,
            period_start=now,
            period_end=add_months(now, product.period.months),
        )
        return await redeem_purchase(
            self._app.uow_factory,
            event,
            user_id=user_id,
            email=None,
            catalog=self._app.products,
            now=now,
        )


class MemoryApplication:
    """genstudio's use cases on memory adapters, a fake clock and a scripted GPU."""

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        gpu: GpuProvider | None = None,
        catalog: Catalog = DEFAULT_CATALOG,
        products: ProductCatalog = DEFAULT_PRODUCTS,
        policy: QueuePolicy = TEST_POLICY,
        poll_interval: float = 1.0,
    ) -> None:
        self.uow_factory = InMemoryUnitOfWorkFactory()
        self.queue = InMemoryJobQueue()
        self.clock = clock or FakeClock()
        self.gpu: GpuProvider = gpu or ScriptedGpu()
        self.storage = InMemoryStorage()
        self.catalog = catalog
        self.products = products
        self.policy = policy
        self.processor = JobProcessor(
            self.uow_factory,
            self.gpu,
            self.storage,
            self.clock,
            self.catalog,
            policy=policy,
            poll_interval=poll_interval,
        )
        self.users = Users(self)

    # -- doing ------------------------------------------------------------------------

    async def submit_image(
        self,
        user_id: uuid.UUID,
        prompt: str = "a red fox in the snow",
        *,
        model: str = "flux-schnell",
        width: int = 512,
        height: int = 512,
        count: int = 1,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """``POST /v1/generate/image``'s use case: price, hold the credits, queue."""
        params = ImageParams(prompt=prompt, width=width, height=height, count=count)
        body = msgspec.json.encode({"model": model, "params": params})
        return await submit_image(
            self.uow_factory,
            self.queue,
            self.clock,
            self.catalog,
            user_id=user_id,
            email=None,
            model_id=model,
            params=params,
            idempotency_key=idempotency_key,
            request_hash=request_fingerprint("POST", IMAGE_PATH, body),
        )

    async def run_jobs(
        self, *, max_rounds: int = 100, processor: JobProcessor | None = None
    ) -> list[Job]:
        """The worker, until nothing is left to do: every due job of every kind is
        claimed and run to its end (its GPU polled, its outputs stored, its credits
        settled or released); a job waiting for a retry is waited for by moving the
        clock. Returns the jobs that ran, as each run left them. A job the GPU keeps
        pending (``ScriptedGpu.hangs``) ends at its kind's timeout, then is retried;
        while the GPU is down (``ScriptedGpu.down``) jobs wait, no attempt spent, and
        this raises after ``max_rounds``. ``processor``: another worker over the same
        ports (the HTTP app's)."""
        worker = processor or self.processor
        ran: list[Job] = []
        for _ in range(max_rounds):
            progressed = False
            for kind in ModelKind:
                job = await worker.process_next(kind.value)
                if job is not None:
                    ran.append(job)
                    progressed = True
            if progressed:
                continue
            due = await self._next_retry()
            if due is None:
                return ran
            self.clock.advance(max((due - self.clock.now()).total_seconds(), 0) + 0.001)
        unfinished = [
            (j.id, j.status.value, j.error) for j in await self.jobs() if not j.status.terminal
        ]
        raise AssertionError(
            f"jobs unfinished after {max_rounds} rounds of the worker (a GPU that is down "
            f"keeps them waiting: ScriptedGpu.down): {unfinished}"
        )

    async def run_due(self, *, processor: JobProcessor | None = None) -> list[Job]:
        """One pass of the worker, the clock left alone: each kind's due jobs run to
        their end (or back to the queue). What waits for a later time waits."""
        worker = processor or self.processor
        ran: list[Job] = []
        for kind in ModelKind:
            while (job := await worker.process_next(kind.value)) is not None:
                ran.append(job)
                if not job.status.terminal and job.next_attempt_at is not None:
                    break  # back in the queue for later: not due again in this pass
        return ran

    async def _next_retry(self) -> datetime | None:
        waiting = [
            j.next_attempt_at
            for j in await self.jobs(statuses=frozenset({JobStatus.QUEUED}))
            if j.next_attempt_at is not None
        ]
        return min(waiting, default=None)

    # -- reading ------------------------------------------------------------------------

    async def job(self, job_id: uuid.UUID) -> Job:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        return job

    async def jobs(
        self, *, user_id: uuid.UUID | None = None, statuses: frozenset[JobStatus] | None = None
    ) -> list[Job]:
        async with self.uow_factory() as uow:
            every = await uow.jobs.list_by_status(statuses or frozenset(JobStatus), limit=100_000)
        return [j for j in every if user_id is None or j.user_id == user_id]

    async def balance(self, user_id: uuid.UUID) -> int:
        async with self.uow_factory() as uow:
            return await uow.ledger.balance(user_id)

    async def ledger(self, user_id: uuid.UUID) -> list[LedgerEntry]:
        """The user's ledger entries, oldest first."""
        async with self.uow_factory() as uow:
            entries = await uow.ledger.entries(user_id, limit=100_000)
        return entries[::-1]  # the port gives them newest first

    async def media_of(self, job_id: uuid.UUID) -> list[MediaAsset]:
        async with self.uow_factory() as uow:
            return await uow.media.list_for_job(job_id)

    async def events(self, job_id: uuid.UUID) -> list[JobEvent]:
        async with self.uow_factory() as uow:
            return await uow.job_events.list_for_job(job_id)
