"""Product analytics (issue #20) on memory adapters: each event is tracked once, after
its transaction commits, never for a rollback, a replay or a user who opted out, and
carries no prompt, caption, comment or personal data."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.adapters.imaging import PillowAvatars
from genstudio.adapters.memory import InMemoryStorage, InMemoryUnitOfWorkFactory
from genstudio.adapters.memory.analytics import RecordingAnalytics
from genstudio.core.model.analytics import (
    MAX_TEXT,
    PROPERTIES,
    AnalyticsEvent,
    EventName,
    job_ended,
    job_submitted,
)
from genstudio.core.model.errors import InsufficientCredits
from genstudio.core.model.idempotency import request_fingerprint
from genstudio.core.model.job_params import ImageParams, TrainingParams
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.pricing import DEFAULT_CATALOG, ModelKind
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Purchase,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.core.model.social import Visibility
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.generation.submit import submit_image
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.purchases.claims import redeem_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.social.posts import Posts
from genstudio.core.services.social.profiles import ProfilePatch, Profiles
from genstudio.core.services.social.views import Urls
from tests.unit.support import POLICY, Studio

PROMPT = "a portrait of Jane Roe at 12 Elm Street, jane@example.com"
CAPTION = "my secret caption"
COMMENT = "call me on 555-0100"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PACK = "app.genstudio.credits.100"
PLAN = "app.genstudio.pro.monthly"


class Analytics:
    """A studio with analytics on: the tracker over a recording adapter."""

    def __init__(self) -> None:
        self.studio = Studio()
        self.factory = self.studio.factory
        self.sink = RecordingAnalytics()
        self.tracker = Tracker(self.sink, self.factory)
        self.processor = JobProcessor(
            self.factory,
            self.studio.gpu,
            self.studio.storage,
            self.studio.clock,
            DEFAULT_CATALOG,
            policy=POLICY,
            poll_interval=1.0,
            analytics=self.tracker,
        )

    async def events(self) -> list[AnalyticsEvent]:
        await self.tracker.drain()
        return self.sink.events

    async def names(self) -> list[EventName]:
        return [e.name for e in await self.events()]

    async def submit(self, user_id: uuid.UUID, *, key: str | None = None, count: int = 1) -> Job:
        params = ImageParams(prompt=PROMPT, count=count)
        done = await submit_image(
            self.factory,
            self.studio.queue,
            self.studio.clock,
            DEFAULT_CATALOG,
            user_id=user_id,
            email="jane@example.com",
            model_id="flux-schnell",
            params=params,
            idempotency_key=key,
            request_hash=request_fingerprint("POST", "/v1/generate/image", b"x"),
            analytics=self.tracker,
        )
        assert done.job is not None
        return done.job

    async def run(self, job: Job) -> Job | None:
        for _ in range(5):
            ran = await self.processor.process_next(job.kind.value)
            current = await self.studio.job(job.id)
            if current.status.terminal:
                return current
            if current.next_attempt_at is not None:
                self.studio.clock.advance(
                    (current.next_attempt_at - self.studio.clock.now()).total_seconds() + 0.001
                )
            assert ran is not None
        return None


@pytest.fixture
def a() -> Analytics:
    return Analytics()


def _no_words_of_the_user(events: list[AnalyticsEvent]) -> None:
    sent = msgspec.json.encode(events).decode()
    for words in (PROMPT, "Jane", "example.com", CAPTION, COMMENT):
        assert words not in sent
    for event in events:
        assert set(event.properties) <= PROPERTIES


# --- generation ------------------------------------------------------------------------


async def test_a_submission_is_tracked_once_after_its_commit_without_its_prompt(
    a: Analytics,
) -> None:
    user = await a.studio.user_with(50)
    job = await a.submit(user, key="k1")
    await a.submit(user, key="k1")  # the replay of the same key: no second event
    [event] = await a.events()
    assert event.name is EventName.GENERATION_SUBMITTED and event.user_id == user
    assert event.properties == {
        "job_id": str(job.id),
        "kind": "image",
        "model": "flux-schnell",
        "credits": job.cost,
    }
    _no_words_of_the_user([event])


async def test_a_refused_submission_tracks_nothing(a: Analytics) -> None:
    user = await a.studio.user_with(0)
    with pytest.raises(InsufficientCredits):
        await a.submit(user)
    assert await a.events() == []


async def test_a_success_is_tracked_with_provider_credits_and_times(a: Analytics) -> None:
    user = await a.studio.user_with(50)
    job = await a.submit(user)
    a.studio.clock.advance(3)
    done = await a.run(job)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert await a.names() == [EventName.GENERATION_SUBMITTED, EventName.GENERATION_SUCCEEDED]
    ended = (await a.events())[1].properties
    assert ended["provider"] == "memory" and ended["credits"] == job.cost
    assert ended["attempts"] == 1
    assert isinstance(ended["queue_wait_s"], float) and ended["queue_wait_s"] >= 3
    assert isinstance(ended["run_time_s"], float) and ended["run_time_s"] >= 0
    _no_words_of_the_user(await a.events())


async def test_a_failure_is_tracked_once_when_it_is_final_not_per_retried_attempt(
    a: Analytics,
) -> None:
    user = await a.studio.user_with(50)
    job = await a.submit(user)
    a.studio.gpu.fail_with = JobError(FailureReason.INFRASTRUCTURE, f"boom: {PROMPT}")
    done = await a.run(job)
    assert done is not None and done.status is JobStatus.FAILED and done.attempts == 3
    assert await a.names() == [EventName.GENERATION_SUBMITTED, EventName.GENERATION_FAILED]
    failed = (await a.events())[1].properties
    assert failed["reason"] == "infrastructure" and failed["dead_lettered"] is True
    assert failed["credits"] == 0  # the hold came back
    _no_words_of_the_user(await a.events())  # the provider's message is not sent either


def test_training_jobs_are_told_as_training() -> None:
    params = TrainingParams(
        photo_set_id=uuid.uuid4(),
        photo_keys=("a",) * 10,
        steps=1000,
        trigger_word="sks",
        base_model="flux-dev",
        name="Jane's face",
    )
    job = Job(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        kind=ModelKind.TRAINING,
        model_id="flux-lora",
        params=params,
        cost=300,
        hold_id=None,
        status=JobStatus.QUEUED,
        created_at=T0,
        updated_at=T0,
    )
    assert job_submitted(job).name is EventName.TRAINING_STARTED
    done = msgspec.structs.replace(
        job, status=JobStatus.SUCCEEDED, submitted_at=T0 + timedelta(seconds=5)
    )
    done = msgspec.structs.replace(done, updated_at=T0 + timedelta(seconds=65))
    ended = job_ended(done)
    assert ended is not None and ended.name is EventName.TRAINING_SUCCEEDED
    assert (ended.properties["queue_wait_s"], ended.properties["run_time_s"]) == (5.0, 60.0)
    failed = job_ended(msgspec.structs.replace(done, status=JobStatus.FAILED))
    assert failed is not None and failed.name is EventName.TRAINING_FAILED
    assert job_ended(msgspec.structs.replace(done, status=JobStatus.CANCELLED)) is None
    assert "Jane" not in msgspec.json.encode([job_submitted(job), ended]).decode()


# --- money -------------------------------------------------------------------------------


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


def _plan(user: uuid.UUID, tx: str, **changes: object) -> SubscriptionSnapshot:
    snapshot = SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=T0,
        original_transaction_id="sub-1",
        transaction_id=tx,
        store_product_id=PLAN,
        user_id=user,
        status=EntitlementStatus.ACTIVE,
        auto_renew=True,
        period_start=T0,
        period_end=T0 + timedelta(days=30),
    )
    return msgspec.structs.replace(snapshot, **changes)


async def _news(a: Analytics, event: StoreEvent, now: datetime = T0) -> None:
    await handle_notification(
        a.factory,
        store=Store.APPLE,
        notification_id=str(uuid.uuid4()),
        kind="test",
        events=[event],
        catalog=DEFAULT_PRODUCTS,
        now=now,
        analytics=a.tracker,
    )


async def test_a_pack_bought_and_refunded_is_tracked_with_store_product_and_amount(
    a: Analytics,
) -> None:
    user = await a.studio.user_with(0)
    for _ in range(2):  # presented twice: one purchase
        await redeem_purchase(
            a.factory,
            _pack(user, "t-1"),
            user_id=user,
            email=None,
            catalog=DEFAULT_PRODUCTS,
            now=T0,
            analytics=a.tracker,
        )
    refund = Revocation(
        store=Store.APPLE,
        occurred_at=T0 + timedelta(minutes=5),
        transaction_id="t-1",
        original_transaction_id="t-1",
        reason=RevocationReason.REFUND,
    )
    await _news(a, refund, T0 + timedelta(hours=1))
    bought, taken = await a.events()
    assert bought.name is EventName.CREDITS_PURCHASED
    assert bought.properties == {"store": "apple", "product": "credits_100", "amount": 100}
    assert taken.name is EventName.CREDITS_CLAWED_BACK
    assert taken.properties == {
        "store": "apple",
        "product": "credits_100",
        "amount": 100,
        "reason": "refund",
    }


async def test_a_subscription_started_renewed_cancelled_and_expired_is_tracked_once_each(
    a: Analytics,
) -> None:
    user = await a.studio.user_with(0)
    later = T0 + timedelta(days=30)
    await redeem_purchase(
        a.factory,
        _plan(user, "p-1"),
        user_id=user,
        email=None,
        catalog=DEFAULT_PRODUCTS,
        now=T0,
        analytics=a.tracker,
    )
    renewal = _plan(
        user, "p-2", occurred_at=later, period_start=later, period_end=later + timedelta(days=30)
    )
    await _news(a, renewal, later)
    await _news(a, renewal, later)  # the same snapshot again: nothing new
    off = msgspec.structs.replace(renewal, auto_renew=False)
    await _news(a, off, later + timedelta(days=1))
    end = later + timedelta(days=30)
    expired = msgspec.structs.replace(off, status=EntitlementStatus.EXPIRED, occurred_at=end)
    await _news(a, expired, end)
    # a plan's monthly allowance is not a purchase of credits: no credits_purchased
    assert await a.names() == [
        EventName.SUBSCRIPTION_STARTED,
        EventName.SUBSCRIPTION_RENEWED,
        EventName.SUBSCRIPTION_CANCELLED,
        EventName.SUBSCRIPTION_EXPIRED,
    ]
    events = {e.name: e.properties for e in await a.events()}
    assert events[EventName.SUBSCRIPTION_STARTED]["product"] == "pro_monthly"
    assert events[EventName.SUBSCRIPTION_CANCELLED]["reason"] == "auto_renew_off"
    assert all(e.user_id == user for e in await a.events())


# --- social ------------------------------------------------------------------------------


async def _asset(a: Analytics, user: uuid.UUID) -> uuid.UUID:
    asset = MediaAsset(
        id=uuid.uuid4(),
        user_id=user,
        kind=MediaKind.IMAGE,
        storage_key=f"{user}/x.png",
        content_type="image/png",
        width=64,
        height=64,
        byte_size=100,
        prompt=PROMPT,
        model_id="flux-schnell",
        job_id=None,
        created_at=T0,
    )
    async with a.factory() as uow:
        await uow.media.add(asset)
        await uow.commit()
    return asset.id


async def test_publishing_liking_and_commenting_are_tracked_without_their_text(
    a: Analytics,
) -> None:
    posts = Posts(a.factory, Urls(InMemoryStorage(), "http://api.test"), analytics=a.tracker)
    author, fan = await a.studio.user_with(0), await a.studio.user_with(0)
    asset_id = await _asset(a, author)
    post = await posts.publish(
        author, None, asset_id=asset_id, caption=CAPTION, visibility=Visibility.PUBLIC, now=T0
    )
    post_id = post.view.post.id
    await posts.like(fan, None, post_id, T0)
    await posts.like(fan, None, post_id, T0)  # liking twice is one like
    await posts.comment(fan, None, post_id, COMMENT, T0)
    published, liked, commented = await a.events()
    assert (published.name, published.user_id) == (EventName.POST_PUBLISHED, author)
    assert published.properties == {
        "post_id": str(post_id),
        "media_kind": "image",
        "visibility": "public",
    }
    assert (liked.name, liked.user_id, liked.properties["own_post"]) == (
        EventName.POST_LIKED,
        fan,
        False,
    )
    assert (commented.name, commented.user_id) == (EventName.COMMENT_ADDED, fan)
    _no_words_of_the_user(await a.events())


# --- opt-out, rollbacks, the tracker itself ----------------------------------------------


async def test_a_user_who_opted_out_is_not_tracked_and_others_still_are(a: Analytics) -> None:
    profiles = Profiles(a.factory, Urls(InMemoryStorage(), "http://api.test"), PillowAvatars())
    quiet, other = await a.studio.user_with(50), await a.studio.user_with(50)
    await profiles.edit(quiet, None, ProfilePatch(analytics=False), T0)
    await a.submit(quiet)
    await a.submit(other)
    assert [e.user_id for e in await a.events()] == [other]
    # turned on again: tracked from then on
    await profiles.edit(quiet, None, ProfilePatch(analytics=True), T0)
    await a.submit(quiet)
    assert [e.user_id for e in await a.events()] == [other, quiet]


async def test_an_erased_account_is_not_tracked(a: Analytics) -> None:
    user = await a.studio.user_with(50)
    async with a.factory() as uow:
        await uow.safety.erase_account(user, T0)
        await uow.commit()
    async with a.factory() as uow:
        assert await uow.social.analytics_opt_outs({user}) == {user}


async def test_an_event_of_a_rolled_back_unit_is_never_sent(a: Analytics) -> None:
    user = await a.studio.user_with(0)
    event = AnalyticsEvent(name=EventName.POST_LIKED, user_id=user, at=T0)
    async with a.factory() as uow:
        a.tracker.track(uow, event)
        await uow.rollback()
    with pytest.raises(RuntimeError):
        async with a.factory() as uow:
            a.tracker.track(uow, event)
            raise RuntimeError("the use case failed before its commit")
    async with a.factory() as uow:
        a.tracker.track(uow, event)  # never committed: dropped at the unit's end
    assert await a.events() == []
    async with a.factory() as uow:
        a.tracker.track(uow, event)
        await uow.commit()
        assert a.sink.events == []  # not before the unit ends
    assert await a.events() == [event]


async def test_unreadable_opt_outs_drop_the_batch_rather_than_send_it_unchecked() -> None:
    sink = RecordingAnalytics()

    def broken() -> InMemoryUnitOfWorkFactory:
        raise ConnectionError("database down")

    studio = Studio()
    tracker = Tracker(sink, broken)  # type: ignore[arg-type]
    async with studio.factory() as uow:
        tracker.track(uow, AnalyticsEvent(name=EventName.POST_LIKED, user_id=uuid.uuid4(), at=T0))
        await uow.commit()
    await tracker.drain()
    assert sink.events == [] and tracker.dropped == 1


async def test_events_are_handed_over_in_batches_and_close_sends_the_rest(a: Analytics) -> None:
    a.tracker.batch = 7
    users = [await a.studio.user_with(0) for _ in range(3)]
    async with a.factory() as uow:
        for i in range(20):
            a.tracker.track(
                uow, AnalyticsEvent(name=EventName.POST_LIKED, user_id=users[i % 3], at=T0)
            )
        await uow.commit()
    await a.tracker.aclose()
    assert len(a.sink.events) == 20 and a.sink.closed
    async with a.factory() as uow:  # closed: nothing more
        a.tracker.track(uow, AnalyticsEvent(name=EventName.POST_LIKED, user_id=users[0], at=T0))
        await uow.commit()
    await asyncio.sleep(0)
    assert len(a.sink.events) == 20


def test_an_event_refuses_properties_outside_the_list_and_long_text() -> None:
    user = uuid.uuid4()
    with pytest.raises(ValueError, match="prompt"):
        AnalyticsEvent(name=EventName.POST_LIKED, user_id=user, at=T0, properties={"prompt": "x"})
    with pytest.raises(ValueError, match="longer"):
        AnalyticsEvent(
            name=EventName.POST_LIKED,
            user_id=user,
            at=T0,
            properties={"model": "x" * (MAX_TEXT + 1)},
        )
    with pytest.raises(ValueError, match="scalar"):
        AnalyticsEvent(
            name=EventName.POST_LIKED,
            user_id=user,
            at=T0,
            properties={"model": ["a"]},  # type: ignore[dict-item]
        )
