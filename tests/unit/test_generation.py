"""Submitting, reading and cancelling image jobs (core/services/generation.py)."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from genstudio.adapters.memory import InMemoryJobQueue
from genstudio.core.model.credits import EntryKind, HoldStatus
from genstudio.core.model.errors import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidInput,
    JobFinished,
    NotFound,
)
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import JobStatus
from genstudio.core.model.pricing import DEFAULT_CATALOG, ModelKind
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.core.services.generation.jobs import cancel_job, wake_on_notice
from genstudio.core.services.generation.submit import TIER_PRIORITY, enhanced
from genstudio.core.services.queries import get_job, job_events, job_view
from tests.unit.support import Studio

SQUARE = ImageParams(prompt="a red fox in the snow", width=1024, height=1024, count=2)
COST = DEFAULT_CATALOG.image_price("flux-schnell", 1024, 1024, 2)


class CommitCheckingQueue(InMemoryJobQueue):
    """Checks, when a job is enqueued, that a fresh unit of work already sees it."""

    def __init__(self, studio: Studio) -> None:
        super().__init__()
        self.studio = studio
        self.visible_at_enqueue: list[bool] = []

    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        async with self.studio.factory() as uow:
            job = await uow.jobs.get(job_id)
            hold = await uow.ledger.get_hold(job.hold_id) if job and job.hold_id else None
        self.visible_at_enqueue.append(job is not None and hold is not None)
        await super().enqueue(job_id, kind=kind, priority=priority)


@pytest.fixture
def studio() -> Studio:
    return Studio()


async def test_submitting_holds_the_cost_and_queues_the_job_after_commit(studio: Studio) -> None:
    queue = studio.queue = CommitCheckingQueue(studio)
    user = await studio.user_with(10)
    result = await studio.submit(user, SQUARE)

    assert result.job is not None and not result.replayed
    job = await studio.job(result.job.id)
    assert result.job == job  # the answer is the job as it was stored
    assert (job.status, job.cost, job.user_id, job.kind) == (
        JobStatus.QUEUED,
        COST,
        user,
        ModelKind.IMAGE,
    )
    assert job.params == SQUARE
    hold = await studio.hold_of(job)
    assert (hold.amount, hold.status, hold.reference) == (COST, HoldStatus.OPEN, f"job:{job.id}")
    assert (await studio.account(user)).balance == 10 - COST
    assert queue.enqueued == [job.id]
    assert queue.visible_at_enqueue == [True]


async def test_a_paying_users_job_is_queued_with_its_tiers_priority(studio: Studio) -> None:
    user = await studio.user_with(10)
    profiles = studio.factory.store.data.profiles
    profiles[user] = msgspec.structs.replace(
        profiles[user], subscription_tier=SubscriptionTier.PREMIUM
    )
    job = await studio.submitted_job(user)
    assert job.priority == TIER_PRIORITY[SubscriptionTier.PREMIUM]
    assert job.priority > TIER_PRIORITY[SubscriptionTier.FREE]
    [(_, _, priority)] = [studio.queue.messages.get_nowait()]
    assert priority == job.priority


async def test_a_submission_beyond_the_balance_creates_no_job_no_entry_and_queues_nothing(
    studio: Studio,
) -> None:
    user = await studio.user_with(COST - 1)
    before = await studio.account(user)
    with pytest.raises(InsufficientCredits) as info:
        await studio.submit(user, SQUARE, key="k-1")
    assert (info.value.required, info.value.available) == (COST, COST - 1)
    assert await studio.jobs_of(user) == []
    assert await studio.account(user) == before
    assert studio.queue.enqueued == []
    async with studio.factory() as uow:
        assert await uow.idempotency.get(user, "k-1") is None


async def test_the_same_idempotency_key_replays_the_first_answer_with_one_job_and_one_hold(
    studio: Studio,
) -> None:
    user = await studio.user_with(10)
    first = await studio.submit(user, SQUARE, key="tap-1")
    again = await studio.submit(user, SQUARE, key="tap-1")
    assert again.replayed and not first.replayed
    assert again.job == first.job and again.response is None  # the same snapshot
    assert [j.id for j in await studio.jobs_of(user)] == [first.job_id]
    state = await studio.account(user)
    assert len(state.of_kind(EntryKind.HOLD)) == 1 and state.balance == 10 - COST
    assert studio.queue.enqueued == [first.job_id]


async def test_a_different_request_under_a_used_key_is_a_mismatch(studio: Studio) -> None:
    user = await studio.user_with(10)
    await studio.submit(user, SQUARE, key="tap-1")
    before = await studio.account(user)
    other = ImageParams(prompt="a blue fox in the snow", width=1024, height=1024, count=2)
    with pytest.raises(IdempotencyMismatch) as info:
        await studio.submit(user, other, key="tap-1")
    assert info.value.field == "Idempotency-Key"
    assert len(await studio.jobs_of(user)) == 1
    assert await studio.account(user) == before


async def test_keys_belong_to_one_user(studio: Studio) -> None:
    alice, bob = await studio.user_with(10), await studio.user_with(10)
    a = await studio.submit(alice, SQUARE, key="tap-1")
    b = await studio.submit(bob, SQUARE, key="tap-1")
    assert not b.replayed and b.job_id != a.job_id
    assert (await studio.account(bob)).balance == 10 - COST


async def test_a_key_held_by_a_request_in_progress_is_refused_until_it_ends(
    studio: Studio,
) -> None:
    user = await studio.user_with(10)
    async with studio.factory() as holder:
        assert await holder.idempotency.try_lock(user, "tap-1")
        with pytest.raises(IdempotencyInProgress):
            await studio.submit(user, SQUARE, key="tap-1")
        assert await studio.jobs_of(user) == []
    result = await studio.submit(user, SQUARE, key="tap-1")
    assert not result.replayed and result.job_id is not None


async def test_fifty_concurrent_submissions_on_a_balance_for_ten_make_exactly_ten_jobs(
    studio: Studio,
) -> None:
    params = ImageParams(prompt="a red fox", width=512, height=512)
    unit = DEFAULT_CATALOG.image_price("flux-schnell", 512, 512, 1)
    user = await studio.user_with(10 * unit)
    results = await asyncio.gather(
        *(studio.submit(user, params, key=f"tap-{i}") for i in range(50)),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(done), len(refused)) == (10, 40)
    jobs = await studio.jobs_of(user)
    assert sorted(j.id for j in jobs) == sorted(r.job.id for r in done if r.job)
    state = await studio.account(user)
    assert state.balance == 0
    assert len(state.of_kind(EntryKind.HOLD)) == 10
    assert sorted(studio.queue.enqueued) == sorted(j.id for j in jobs)


async def test_concurrent_duplicates_of_one_request_make_one_job(studio: Studio) -> None:
    user = await studio.user_with(100)
    results = await asyncio.gather(
        *(studio.submit(user, SQUARE, key="tap-1") for _ in range(20)), return_exceptions=True
    )
    answers = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, IdempotencyInProgress) for e in errors), errors
    assert answers, "at least the first request is answered"
    assert len({a.job_id for a in answers}) == 1
    assert all(a.job == answers[0].job for a in answers)
    assert sum(not a.replayed for a in answers) == 1
    assert len(await studio.jobs_of(user)) == 1
    assert (await studio.account(user)).balance == 100 - COST


@pytest.mark.parametrize(
    ("model_id", "params", "error", "field"),
    [
        ("flux-schnell", ImageParams(prompt=" "), InvalidInput, "prompt"),
        ("flux-schnell", ImageParams(prompt="x", count=5), InvalidInput, "count"),
        ("sdxl-inpaint", ImageParams(prompt="x"), InvalidInput, "model"),  # an edit model
        ("nope", ImageParams(prompt="x"), InvalidInput, "model"),
    ],
)
async def test_an_invalid_submission_writes_nothing(
    studio: Studio, model_id: str, params: ImageParams, error: type[Exception], field: str
) -> None:
    user = await studio.user_with(10)
    before = await studio.account(user)
    with pytest.raises(error) as info:
        await studio.submit(user, params, key="tap-1", model_id=model_id)
    assert info.value.field == field  # type: ignore[attr-defined]
    assert await studio.jobs_of(user) == []
    assert await studio.account(user) == before
    assert studio.queue.enqueued == []


async def test_a_user_reads_their_own_job(studio: Studio) -> None:
    user = await studio.user_with(10)
    job = await studio.submitted_job(user)
    assert await get_job(studio.factory, user_id=user, job_id=job.id) == job


async def test_another_users_job_is_not_found(studio: Studio) -> None:
    owner, other = await studio.user_with(10), await studio.user_with(10)
    job = await studio.submitted_job(owner)
    with pytest.raises(NotFound) as info:
        await get_job(studio.factory, user_id=other, job_id=job.id)
    assert info.value.field == "job_id"
    with pytest.raises(NotFound):
        await cancel_job(studio.factory, studio.clock, user_id=other, job_id=job.id)
    assert await studio.job(job.id) == job
    assert (await studio.hold_of(job)).status is HoldStatus.OPEN


async def test_an_unknown_job_is_not_found(studio: Studio) -> None:
    user = await studio.user_with(0)
    with pytest.raises(NotFound):
        await get_job(studio.factory, user_id=user, job_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await cancel_job(studio.factory, studio.clock, user_id=user, job_id=uuid.uuid4())


async def test_cancelling_a_queued_job_releases_its_hold_exactly_once(studio: Studio) -> None:
    user = await studio.user_with(10)
    job = await studio.submitted_job(user, SQUARE)
    studio.clock.advance(5)
    cancelled = await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.updated_at == studio.clock.now()
    assert await studio.job(job.id) == cancelled
    hold = await studio.hold_of(job)
    assert hold.status is HoldStatus.RELEASED
    with pytest.raises(JobFinished):
        await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)
    state = await studio.account(user)
    assert state.balance == 10
    assert len(state.of_kind(EntryKind.RELEASE)) == 1


async def test_concurrent_cancellations_release_the_hold_once(studio: Studio) -> None:
    user = await studio.user_with(10)
    job = await studio.submitted_job(user, SQUARE)
    results = await asyncio.gather(
        *(cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, JobFinished) for r in results if isinstance(r, BaseException))
    state = await studio.account(user)
    assert state.balance == 10 and len(state.of_kind(EntryKind.RELEASE)) == 1


class _ScriptedEnhancer:
    """An enhancer that answers what it is told to, and counts its calls."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.calls = 0

    async def enhance(self, prompt: str) -> str:
        self.calls += 1
        return self.answer


async def test_a_prompt_that_would_be_refused_is_not_sent_out_to_be_enhanced() -> None:
    enhancer = _ScriptedEnhancer("a fine cat, highly detailed")
    with pytest.raises(InvalidInput) as info:
        await enhanced(ImageParams(prompt="a cat\x00"), enhancer)
    assert info.value.field == "prompt" and enhancer.calls == 0


@pytest.mark.parametrize("answer", ["", "   ", "x" * 2001, "a cat\x00 in the dark"])
async def test_an_unusable_enhancement_keeps_the_users_prompt(answer: str) -> None:
    params = ImageParams(prompt="a cat")
    assert await enhanced(params, _ScriptedEnhancer(answer)) == params


async def test_a_usable_enhancement_is_taken_and_the_users_words_kept() -> None:
    better = await enhanced(ImageParams(prompt="a cat"), _ScriptedEnhancer("a cat, detailed"))
    assert (better.prompt, better.original_prompt) == ("a cat, detailed", "a cat")


async def test_an_enhanced_submission_is_enhanced_once_and_its_retry_replays_it(
    studio: Studio,
) -> None:
    user = await studio.user_with(10)
    enhancer = _ScriptedEnhancer("a red fox in the snow, highly detailed")
    first = await studio.submit(user, SQUARE, key="tap-1", enhancer=enhancer)
    again = await studio.submit(user, SQUARE, key="tap-1", enhancer=enhancer)
    assert first.job is not None and first.job.params.prompt == enhancer.answer
    assert again.replayed and again.job == first.job
    assert enhancer.calls == 1, "the retry paid for a second enhancement"


@pytest.mark.parametrize(
    ("params", "model_id", "credits", "key", "error"),
    [
        (SQUARE, "nope", 10, None, InvalidInput),  # no such model
        (ImageParams(prompt="a fox", count=5), "flux-schnell", 10, None, InvalidInput),
        (ImageParams(prompt="a fox\x00"), "flux-schnell", 10, None, InvalidInput),
        (SQUARE, "flux-schnell", COST - 1, None, InsufficientCredits),  # the balance, read
        (ImageParams(prompt="another fox"), "flux-schnell", 10, "tap-1", IdempotencyMismatch),
    ],
)
async def test_the_free_checks_come_before_the_paid_enhancement(
    studio: Studio,
    params: ImageParams,
    model_id: str,
    credits: int,
    key: str | None,
    error: type[Exception],
) -> None:
    user = await studio.user_with(credits)
    if key is not None:  # the key answered another request
        await studio.submit(user, ImageParams(prompt="a fox", width=512, height=512), key=key)
    enhancer = _ScriptedEnhancer("a fine fox, highly detailed")
    with pytest.raises(error):
        await studio.submit(user, params, key=key, model_id=model_id, enhancer=enhancer)
    assert enhancer.calls == 0


async def test_a_providers_notice_wakes_a_live_job_after_commit_and_leaves_a_finished_one(
    studio: Studio,
) -> None:
    user = await studio.user_with(10)
    live = await studio.submitted_job(user, SQUARE)
    finished = await cancel_job(studio.factory, studio.clock, user_id=user, job_id=(
        await studio.submitted_job(user, SQUARE)
    ).id)  # fmt: skip
    queue = studio.queue = CommitCheckingQueue(studio)

    woken = await wake_on_notice(studio.factory, queue, job_id=live.id)
    left = await wake_on_notice(studio.factory, queue, job_id=finished.id)

    assert (woken.id, left.status) == (live.id, JobStatus.CANCELLED)
    assert queue.enqueued == [live.id] and queue.visible_at_enqueue == [True]
    with pytest.raises(NotFound) as info:
        await wake_on_notice(studio.factory, queue, job_id=uuid.uuid4())
    assert info.value.field == "job"


async def test_a_jobs_view_and_events_are_its_owners_only(studio: Studio) -> None:
    user, other = await studio.user_with(10), await studio.user_with(10)
    job = await studio.submitted_job(user, SQUARE)
    view = await job_view(
        studio.factory, studio.storage, studio.clock, user_id=user, job_id=job.id, url_ttl=60
    )
    assert (view.job, view.media) == (job, [])
    assert await job_events(studio.factory, user_id=user, job_id=job.id) == await studio.events(
        job.id
    )
    with pytest.raises(NotFound):
        await job_view(
            studio.factory, studio.storage, studio.clock, user_id=other, job_id=job.id, url_ttl=60
        )
    with pytest.raises(NotFound):
        await job_events(studio.factory, user_id=other, job_id=job.id)
