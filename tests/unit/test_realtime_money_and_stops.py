"""What the open app is told live beyond submissions and the worker's own path
(issue #18), on memory adapters: the balance after a store purchase, a store's news
(a refund's claw-back, a renewal), a month's allowance, an operator's grant; a job
an operator re-runs, a training submitted, a job a stopping worker hands back. Each
is told once its unit of work committed, with the balance its ledger entries left
(no read added), and never for a unit that did not commit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.adapters.memory import InMemoryGpuProvider, InMemoryStorage
from genstudio.adapters.memory.realtime import RecordingRealtimePublisher
from genstudio.adapters.memory.store import InMemoryStore
from genstudio.adapters.memory.uow import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import ConcurrencyConflict
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Informational,
    Purchase,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.core.model.training.photos import Photo, PhotoSet, Verdict
from genstudio.core.services.credits import grant_credits, open_account
from genstudio.core.services.generation.jobs import rerun_dead_letter
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.purchases.claims import redeem_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from genstudio.core.services.reconcile import Reconciler
from genstudio.core.services.training.service import Training
from genstudio.ports.realtime import CREDITS_CHANGED, JOB_UPDATED
from tests.unit.support import POLICY, Studio, account, add

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PACK = "app.genstudio.credits.100"  # 100 credits
YEARLY = "app.genstudio.pro.yearly"  # 500 credits a month


class RefusingFactory(InMemoryUnitOfWorkFactory):
    """Units over a shared store whose ``commit`` fails while ``refuse`` is set, as a
    COMMIT the database refuses (a serialization failure, a connection lost): nothing
    of the unit is written, and the unit ends with an exception."""

    def __init__(self, store: InMemoryStore) -> None:
        super().__init__(store)
        self.refuse = True

    def __call__(self) -> InMemoryUnitOfWork:
        return _RefusingUnit(self.store, self)


class _RefusingUnit(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryStore, factory: RefusingFactory) -> None:
        super().__init__(store)
        self.factory = factory

    async def commit(self) -> None:
        if self.factory.refuse:
            raise ConcurrencyConflict("the database refused the commit")
        await super().commit()


def _told(realtime: RecordingRealtimePublisher, user: uuid.UUID) -> list[tuple[str, object]]:
    """What ``user``'s app heard: (event, balance) or (event, status)."""
    return [
        (e.event_type, e.payload["balance"] if "balance" in e.payload else e.payload["status"])
        for e in realtime.of(user)
    ]


def _pack(user: uuid.UUID, tx: str) -> Purchase:
    return Purchase(
        store=Store.APPLE,
        occurred_at=T0,
        transaction_id=tx,
        original_transaction_id=tx,
        store_product_id=PACK,
        user_id=user,
        purchased_at=T0,
    )


def _yearly(user: uuid.UUID, tx: str = "y-1", **changes: object) -> SubscriptionSnapshot:
    snapshot = SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=T0,
        original_transaction_id="sub-y",
        transaction_id=tx,
        store_product_id=YEARLY,
        user_id=user,
        status=EntitlementStatus.ACTIVE,
        auto_renew=True,
        period_start=T0,
        period_end=T0 + timedelta(days=365),
    )
    return msgspec.structs.replace(snapshot, **changes)


async def _redeem(
    studio: Studio,
    event: Purchase | SubscriptionSnapshot,
    user: uuid.UUID,
    realtime: RecordingRealtimePublisher,
    factory: InMemoryUnitOfWorkFactory | None = None,
) -> int:
    done = await redeem_purchase(
        factory or studio.factory,
        event,
        user_id=user,
        email=None,
        catalog=DEFAULT_PRODUCTS,
        now=T0,
        realtime=realtime,
    )
    return done.balance


async def _news(
    studio: Studio,
    realtime: RecordingRealtimePublisher,
    *events: StoreEvent,
    now: datetime = T0,
    notification_id: str | None = None,
    factory: InMemoryUnitOfWorkFactory | None = None,
) -> None:
    await handle_notification(
        factory or studio.factory,
        store=Store.APPLE,
        notification_id=notification_id or str(uuid.uuid4()),
        kind="test",
        events=list(events),
        catalog=DEFAULT_PRODUCTS,
        now=now,
        realtime=realtime,
    )


# --- purchases the app presents ------------------------------------------------------


async def test_a_redeemed_pack_announces_the_new_balance_once_and_its_replay_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(7)
    assert await _redeem(studio, _pack(user, "t-1"), user, realtime) == 107
    assert await _redeem(studio, _pack(user, "t-1"), user, realtime) == 107  # presented again
    assert _told(realtime, user) == [(CREDITS_CHANGED, 107)]


async def test_a_redeemed_subscription_announces_its_first_months_allowance() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(0)
    assert await _redeem(studio, _yearly(user), user, realtime) == 500
    assert _told(realtime, user) == [(CREDITS_CHANGED, 500)]


async def test_a_redemption_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(7)
    refusing = RefusingFactory(studio.factory.store)
    with pytest.raises(ConcurrencyConflict):
        await _redeem(studio, _pack(user, "t-1"), user, realtime, refusing)
    assert realtime.events == []
    assert (await account(studio.factory, user)).balance == 7


# --- the stores' news -----------------------------------------------------------------


async def test_a_refund_announces_the_balance_its_claw_back_left() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(5)
    await _redeem(studio, _pack(user, "t-1"), user, realtime)
    refund = Revocation(
        store=Store.APPLE,
        occurred_at=T0 + timedelta(minutes=5),
        transaction_id="t-1",
        original_transaction_id="t-1",
        reason=RevocationReason.REFUND,
    )
    await _news(studio, realtime, refund, now=T0 + timedelta(hours=1))
    assert _told(realtime, user) == [(CREDITS_CHANGED, 105), (CREDITS_CHANGED, 5)]
    assert (await account(studio.factory, user)).balance == 5


async def test_news_of_a_pack_the_app_never_presented_announces_its_credits() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(0)
    await _news(studio, realtime, _pack(user, "t-9"))
    assert _told(realtime, user) == [(CREDITS_CHANGED, 100)]


async def test_one_notification_for_two_users_announces_each_their_own_balance() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    alice, bob = await studio.user_with(1), await studio.user_with(2)
    await _news(studio, realtime, _pack(alice, "a-1"), _pack(bob, "b-1"), _pack(alice, "a-2"))
    # alice's last entry left her at 201: told once, as it stood at the commit
    assert _told(realtime, alice) == [(CREDITS_CHANGED, 201)]
    assert _told(realtime, bob) == [(CREDITS_CHANGED, 102)]


async def test_a_renewals_allowance_is_announced_and_news_that_moves_no_credits_is_not() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(0)
    monthly = _yearly(
        user,
        "m-1",
        original_transaction_id="sub-m",
        store_product_id="app.genstudio.pro.monthly",
        period_end=T0 + timedelta(days=30),
    )
    await _news(studio, realtime, monthly)
    later = T0 + timedelta(days=30)
    renewal = msgspec.structs.replace(
        monthly,
        transaction_id="m-2",
        occurred_at=later,
        period_start=later,
        period_end=later + timedelta(days=30),
    )
    await _news(studio, realtime, renewal, now=later)
    await _news(studio, realtime, msgspec.structs.replace(renewal, auto_renew=False), now=later)
    await _news(studio, realtime, Informational(store=Store.APPLE, occurred_at=later, kind="TEST"))
    balance = (await account(studio.factory, user)).balance
    # the first month's lot expired as the second began: what the second grant left
    assert _told(realtime, user) == [(CREDITS_CHANGED, 500), (CREDITS_CHANGED, balance)]


async def test_a_notification_delivered_again_announces_nothing_the_second_time() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(0)
    for _ in range(2):
        await _news(studio, realtime, _pack(user, "t-1"), notification_id="n-1")
    assert _told(realtime, user) == [(CREDITS_CHANGED, 100)]


async def test_news_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(3)
    refusing = RefusingFactory(studio.factory.store)
    with pytest.raises(ConcurrencyConflict):
        await _news(studio, realtime, _pack(user, "t-1"), factory=refusing)
    assert realtime.events == []
    assert (await account(studio.factory, user)).balance == 3


# --- allowances that fall due, an operator's grant --------------------------------------


async def test_each_allowance_month_that_falls_due_announces_the_balance_it_left() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    alice, bob = await studio.user_with(0), await studio.user_with(0)
    await _redeem(studio, _yearly(alice, "ya-1", original_transaction_id="sub-a"), alice, realtime)
    await _redeem(studio, _yearly(bob, "yb-1", original_transaction_id="sub-b"), bob, realtime)
    realtime.events.clear()
    month_two = T0 + timedelta(days=32)
    granted = await grant_due_allowances(
        studio.factory, catalog=DEFAULT_PRODUCTS, now=month_two, realtime=realtime
    )
    assert granted == 1000
    for user in (alice, bob):
        balance = (await account(studio.factory, user)).balance
        assert _told(realtime, user) == [(CREDITS_CHANGED, balance)]
    # run again (the scheduler's next pass): nothing falls due, nothing is told
    again = await grant_due_allowances(
        studio.factory, catalog=DEFAULT_PRODUCTS, now=month_two, realtime=realtime
    )
    assert again == 0 and len(realtime.events) == 2


async def test_an_allowance_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(0)
    await _redeem(studio, _yearly(user), user, realtime)
    realtime.events.clear()
    refusing = RefusingFactory(studio.factory.store)
    month_two = T0 + timedelta(days=32)
    with pytest.raises(ConcurrencyConflict):
        await grant_due_allowances(
            refusing, catalog=DEFAULT_PRODUCTS, now=month_two, realtime=realtime
        )
    assert realtime.events == []


async def test_an_operators_grant_announces_the_new_balance_and_its_replay_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(10)
    for _ in range(2):  # the same key twice: one grant
        entry = await grant_credits(
            studio.factory,
            user_id=user,
            amount=25,
            reference="goodwill",
            idempotency_key="cli:once",
            now=T0,
            realtime=realtime,
        )
        assert entry.balance_after == 35
    assert _told(realtime, user) == [(CREDITS_CHANGED, 35)]


async def test_an_operators_grant_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(10)
    with pytest.raises(ConcurrencyConflict):
        await grant_credits(
            RefusingFactory(studio.factory.store),
            user_id=user,
            amount=25,
            reference="goodwill",
            idempotency_key="cli:once",
            now=T0,
            realtime=realtime,
        )
    assert realtime.events == []


async def test_credits_swept_as_expired_when_the_account_is_read_are_announced() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(10)
    earlier = T0 - timedelta(days=30)
    await add(studio.factory, user, 30, earlier, kind=EntryKind.ALLOWANCE, expires_at=T0)
    before = await open_account(
        studio.factory, user_id=user, email=None, now=earlier, realtime=realtime
    )
    assert before.credits == 40
    assert realtime.events == []  # nothing expired yet: nothing swept, nothing told
    with pytest.raises(ConcurrencyConflict):
        await open_account(
            RefusingFactory(studio.factory.store),
            user_id=user,
            email=None,
            now=T0,
            realtime=realtime,
        )
    assert realtime.events == []
    profile = await open_account(
        studio.factory, user_id=user, email=None, now=T0, realtime=realtime
    )
    assert profile.credits == 10
    assert _told(realtime, user) == [(CREDITS_CHANGED, 10)]
    await open_account(studio.factory, user_id=user, email=None, now=T0, realtime=realtime)
    assert len(realtime.events) == 1  # swept once


# --- jobs: an operator's re-run, a training, a stopping worker, the reconciler ----------


async def _dead_lettered(studio: Studio, user: uuid.UUID) -> Job:
    studio.gpu.fail_with = JobError(FailureReason.INFRASTRUCTURE, "the GPU broke")
    job = await studio.submitted_job(user)
    done = await studio.drive(job.id)
    assert done is not None and done.dead_lettered_at is not None
    studio.gpu.fail_with = None
    return done


async def test_an_operators_rerun_announces_the_new_job_and_the_credits_it_holds() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    dead = await _dead_lettered(studio, user)
    rerun = await rerun_dead_letter(
        studio.factory, studio.queue, studio.clock, job_id=dead.id, realtime=realtime
    )
    assert _told(realtime, user) == [(JOB_UPDATED, "queued"), (CREDITS_CHANGED, 20 - dead.cost)]
    assert realtime.events[0].payload["jobId"] == str(rerun.id)
    # asked again (idempotent): the same re-run, nothing new to tell
    await rerun_dead_letter(
        studio.factory, studio.queue, studio.clock, job_id=dead.id, realtime=realtime
    )
    assert len(realtime.events) == 2


async def test_a_rerun_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    dead = await _dead_lettered(studio, user)
    with pytest.raises(ConcurrencyConflict):
        await rerun_dead_letter(
            RefusingFactory(studio.factory.store),
            studio.queue,
            studio.clock,
            job_id=dead.id,
            realtime=realtime,
        )
    assert realtime.events == []


async def test_a_submitted_training_announces_its_queued_job_and_the_held_credits() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(500)
    set_id = uuid.uuid4()
    async with studio.factory() as uow:
        await uow.photo_sets.add_set(PhotoSet(id=set_id, user_id=user, name=None, created_at=T0))
        for n in range(10):
            await uow.photo_sets.add_photo(
                Photo(
                    id=uuid.uuid4(),
                    set_id=set_id,
                    user_id=user,
                    storage_key=f"{user}/training/{set_id}/{n}.jpg",
                    content_type="image/jpeg",
                    width=1024,
                    height=1024,
                    byte_size=1000,
                    measures=None,
                    verdict=Verdict(True, (), 90),
                    created_at=T0,
                )
            )
        await uow.commit()
    training = Training(
        studio.factory,
        studio.queue,
        studio.clock,
        DEFAULT_CATALOG,
        InMemoryStorage(),
        url_ttl=60,
        realtime=realtime,
    )
    submitted = await training.submit(
        user_id=user,
        email=None,
        model_id=None,
        photo_set_id=set_id,
        steps=1000,
        trigger_word="ohwx",
        base_model=None,
        name="Me",
        seed=None,
        idempotency_key=None,
        request_hash="h",
    )
    price = DEFAULT_CATALOG.training_price("flux-lora", 1000)
    assert _told(realtime, user) == [(JOB_UPDATED, "queued"), (CREDITS_CHANGED, 500 - price)]
    assert realtime.events[0].payload["jobId"] == str(submitted.job_id)
    assert realtime.events[0].payload["kind"] == "training"


class LocalLikeGpu(InMemoryGpuProvider):
    """A provider whose work ends with this process (as the preview renderer's)."""

    durable = False


def _worker(
    studio: Studio,
    gpu: InMemoryGpuProvider,
    realtime: RecordingRealtimePublisher,
    factory: InMemoryUnitOfWorkFactory | None = None,
) -> JobProcessor:
    return JobProcessor(
        factory or studio.factory,
        gpu,
        studio.storage,
        studio.clock,
        DEFAULT_CATALOG,
        policy=POLICY,
        poll_interval=1.0,
        realtime=realtime,
    )


async def _running(studio: Studio, worker: JobProcessor, job_id: uuid.UUID) -> asyncio.Task[Job]:
    """The job followed by ``worker`` in a task, once its provider says it is running."""
    task = asyncio.create_task(studio.deliver(job_id, worker))
    for _ in range(500):
        await asyncio.sleep(0)
        if (await studio.job(job_id)).status is JobStatus.RUNNING:
            return task
    raise AssertionError("the job never ran at its provider")


async def test_a_job_a_stopping_worker_requeues_is_announced_queued() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    gpu = LocalLikeGpu(steps=10_000)
    worker = _worker(studio, gpu, realtime)
    user = await studio.user_with(20)
    job = await studio.submitted_job(user)
    task = await _running(studio, worker, job.id)
    realtime.events.clear()

    assert await worker.stop(grace=0) == 1
    assert task.cancelled()
    back = await studio.job(job.id)
    assert back.status is JobStatus.QUEUED
    [told] = realtime.of(user)
    assert (told.event_type, told.payload) == (
        JOB_UPDATED,
        {"jobId": str(job.id), "kind": "image", "status": "queued", "progress": 0, "error": None},
    )


async def test_a_job_left_running_at_its_provider_by_a_stopping_worker_is_not_announced() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    gpu = InMemoryGpuProvider(steps=10_000)  # durable: it runs on without this worker
    worker = _worker(studio, gpu, realtime)
    user = await studio.user_with(20)
    job = await studio.submitted_job(user)
    await _running(studio, worker, job.id)
    realtime.events.clear()

    assert await worker.stop(grace=0) == 1
    left = await studio.job(job.id)
    assert left.status in (JobStatus.DISPATCHED, JobStatus.RUNNING)
    assert realtime.events == []  # its status and progress did not move: nothing to tell


async def test_a_hand_back_whose_commit_is_refused_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    gpu = LocalLikeGpu(steps=10_000)
    refusing = RefusingFactory(studio.factory.store)
    refusing.refuse = False
    worker = _worker(studio, gpu, realtime, refusing)
    user = await studio.user_with(20)
    job = await studio.submitted_job(user)
    await _running(studio, worker, job.id)
    realtime.events.clear()

    refusing.refuse = True
    assert await worker.stop(grace=0) == 0  # logged; its lease runs out instead
    assert realtime.events == []
    assert (await studio.job(job.id)).status in (JobStatus.DISPATCHED, JobStatus.RUNNING)


async def test_the_reconciler_moves_nothing_and_the_worker_it_wakes_tells_the_end() -> None:
    """The reconciler only re-sends wake-ups (``jobs.mark_enqueued``): it has nothing of
    its own to announce. A dead worker's job it wakes is announced by the worker that
    takes it over, as that worker moves it."""
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    lost = await studio.submitted_job(user)  # its wake-up message was lost
    dead_workers = await studio.submitted_job(user)
    async with studio.factory() as uow:  # a worker took it, then died
        taken = dead_workers.dispatch(
            "memory", studio.clock.now(), lease_owner="gone", lease_until=studio.clock.now()
        )
        await uow.jobs.update(taken)
        await uow.commit()
    studio.clock.advance(POLICY.redeliver_after_seconds + 1)
    before = {j.id: (j.status, j.progress) for j in await studio.jobs_of(user)}
    balance = (await account(studio.factory, user)).balance

    report = await Reconciler(studio.factory, studio.queue, studio.clock, policy=POLICY).tick()

    assert report.woken == 2 and report.abandoned == 1
    assert {j.id: (j.status, j.progress) for j in await studio.jobs_of(user)} == before
    assert (await account(studio.factory, user)).balance == balance
    assert realtime.events == []
    worker = _worker(studio, studio.gpu, realtime)
    for _ in range(2):  # the two wake-ups it sent, each run by the worker to its end
        assert await worker.process_next("image") is not None
    for job in (lost, dead_workers):
        told = [
            e.payload["status"]
            for e in realtime.of(user, JOB_UPDATED)
            if e.payload["jobId"] == str(job.id)
        ]
        assert told[-1] == "succeeded"
        assert (await studio.job(job.id)).status is JobStatus.SUCCEEDED
