"""What the observed unit of work and push sender report (adapters/observed): the
job transitions, credit flows and pushes the core committed, counted once, and
nothing of what was rolled back. The core runs as a worker runs it, on memory
adapters (``Studio``), with its unit of work observed into ``MemoryMetrics``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.adapters.memory.metrics import MemoryMetrics
from genstudio.adapters.memory.push import RecordingPushSender
from genstudio.adapters.observed import ObservedPushSender, ObservedUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, JobError, JobStatus
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services import credits as svc
from genstudio.core.services.generation.jobs import cancel_job
from genstudio.ports.gpu import Cancelled, ProviderStatus
from genstudio.ports.push import PushMessage, PushUnavailable
from tests.unit.support import Studio, add

PARAMS = ImageParams(prompt="a lighthouse at dusk", width=512, height=512, count=1)
COST = DEFAULT_CATALOG.image_price("flux-schnell", 512, 512, 1)
CREDITS = 20


class SlowGpu(InMemoryGpuProvider):
    """Each poll takes 3 s of the studio's clock: the run time has a known length."""

    def __init__(self, studio: Studio, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.studio = studio

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        self.studio.clock.advance(3)
        return await super().poll(provider_job_id)


def observed(studio: Studio) -> MemoryMetrics:
    """Observe ``studio``'s units of work from now on (its worker included)."""
    metrics = MemoryMetrics()
    studio.factory = ObservedUnitOfWorkFactory(studio.factory, metrics)  # type: ignore[assignment]
    studio.processor = studio.processor_for(studio.gpu)
    return metrics


@pytest.fixture
def studio() -> Studio:
    return Studio()


async def test_a_successful_job_counts_its_submission_claim_attempt_run_time_and_spend(
    studio: Studio,
) -> None:
    studio.use_gpu(SlowGpu(studio, steps=2))
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    studio.clock.advance(7)  # it waits 7 s in the queue
    done = await studio.deliver(job.id)
    assert done.status is JobStatus.SUCCEEDED

    assert metrics.submitted == {"image": 1}
    assert metrics.claimed == {"image": 1}
    assert metrics.waits == [("image", 7.0)]
    provider = studio.gpu.name
    assert metrics.attempts == {("image", provider, "succeeded", "none"): 1}
    [(kind, run_provider, seconds)] = metrics.runs
    assert (kind, run_provider) == ("image", provider) and seconds >= 3.0
    assert metrics.finished == {("image", "succeeded"): 1}
    assert metrics.credits == {"purchased": CREDITS, "held": COST, "spent": COST}


async def test_a_content_refusal_is_a_failed_attempt_and_a_failed_job_with_its_credits_back(
    studio: Studio,
) -> None:
    studio.gpu.fail_with = JobError(FailureReason.CONTENT, "refused")
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    assert (await studio.deliver(job.id)).status is JobStatus.FAILED

    assert metrics.attempts == {("image", studio.gpu.name, "failed", "content"): 1}
    assert metrics.finished == {("image", "failed"): 1}
    assert metrics.credits["released"] == COST and "spent" not in metrics.credits


async def test_provider_faults_are_retried_attempts_until_the_job_is_dead_lettered(
    studio: Studio,
) -> None:
    class CancellingGpu(InMemoryGpuProvider):
        async def poll(self, provider_job_id: str) -> ProviderStatus:
            return Cancelled()

    studio.use_gpu(CancellingGpu())
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    done = await studio.drive(job.id)
    assert done is not None and done.dead_lettered_at is not None and done.attempts == 3

    assert metrics.attempts == {("image", studio.gpu.name, "failed", "infrastructure"): 3}
    assert metrics.claimed == {"image": 3}
    assert metrics.finished == {("image", "dead_lettered"): 1}
    assert metrics.credits["released"] == COST


async def test_a_provider_that_cannot_be_reached_counts_attempts_not_taken(
    studio: Studio,
) -> None:
    studio.gpu.down = True
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    waiting = await studio.deliver(job.id)
    assert waiting.status is JobStatus.QUEUED and waiting.attempts == 0

    assert metrics.attempts == {("image", studio.gpu.name, "not_taken", "infrastructure"): 1}
    assert metrics.finished == {}
    assert metrics.runs == []


async def test_a_cancelled_job_counts_as_cancelled_with_its_hold_released(studio: Studio) -> None:
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)

    assert metrics.finished == {("image", "cancelled"): 1}
    assert metrics.credits["released"] == COST
    assert metrics.attempts == {}


async def test_a_replayed_submission_is_counted_once(studio: Studio) -> None:
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    first = await studio.submit(user, PARAMS, key="same")
    again = await studio.submit(user, PARAMS, key="same")
    assert first.job_id == again.job_id
    assert metrics.submitted == {"image": 1}
    assert metrics.credits["held"] == COST


async def test_what_a_unit_of_work_does_not_commit_counts_for_nothing(studio: Studio) -> None:
    metrics = observed(studio)
    user = await studio.user_with(0)
    now = studio.clock.now()
    async with studio.factory() as uow:  # no commit: rolled back on exit
        await svc.add_credits(
            uow,
            user_id=user,
            amount=50,
            kind=EntryKind.GRANT,
            reference="never",
            idempotency_key="k1",
            now=now,
        )
    async with studio.factory() as uow:  # an explicit rollback drops it too
        await svc.add_credits(
            uow,
            user_id=user,
            amount=50,
            kind=EntryKind.GRANT,
            reference="never",
            idempotency_key="k2",
            now=now,
        )
        await uow.rollback()
    with pytest.raises(RuntimeError):
        async with studio.factory() as uow:  # an exception before the commit
            await svc.add_credits(
                uow,
                user_id=user,
                amount=50,
                kind=EntryKind.GRANT,
                reference="never",
                idempotency_key="k3",
                now=now,
            )
            raise RuntimeError("boom")
    assert metrics.credits == {}
    async with studio.factory() as uow:
        assert await uow.ledger.balance(user) == 0


async def test_grants_allowances_clawbacks_refunds_and_expiries_are_their_own_flows(
    studio: Studio,
) -> None:
    metrics = observed(studio)
    user = await studio.user_with(0)
    now = studio.clock.now()
    await svc.grant_credits(
        studio.factory,
        user_id=user,
        amount=5,
        reference="promo",
        idempotency_key="promo",
        now=now,
        expires_at=now + timedelta(days=1),
    )
    await add(studio.factory, user, 12, now, kind=EntryKind.ALLOWANCE)
    pack = await add(studio.factory, user, 30, now, kind=EntryKind.PURCHASE)
    async with studio.factory() as uow:  # the pack is refunded by the store
        await uow.ledger.lock_account(user)
        assert pack.lot_id is not None
        taken = await svc.claw_back_lot(
            uow, user_id=user, lot_id=pack.lot_id, reference="refund", now=now
        )
        await uow.commit()
    assert taken == 30
    studio.clock.advance(2 * 86400)  # the promotional grant expires unspent
    async with studio.factory() as uow:
        await uow.ledger.lock_account(user)
        await svc.expire_due_lots(uow, user, studio.clock.now())
        await uow.commit()

    assert metrics.credits == {
        "granted": 5,
        "allowance": 12,
        "purchased": 30,
        "clawed_back": 30,
        "expired": 5,
    }


async def test_a_settled_spend_given_back_is_refunded(studio: Studio) -> None:
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    assert (await studio.deliver(job.id)).status is JobStatus.SUCCEEDED
    assert job.hold_id is not None
    async with studio.factory() as uow:
        await uow.ledger.lock_account(user)
        await svc.refund_settled(uow, hold_id=job.hold_id, reason="support", now=studio.clock.now())
        await uow.commit()
    assert metrics.credits["spent"] == COST and metrics.credits["refunded"] == COST


def _message(token: str) -> PushMessage:
    return PushMessage(to=token, title="Done", body="Your image is ready", data={})


async def test_the_push_sender_counts_sends_refusals_by_code_and_outages() -> None:
    inner = RecordingPushSender()
    inner.refused = {"t-gone": "DeviceNotRegistered", "t-odd": "SomethingNew"}
    metrics = MemoryMetrics()
    sender = ObservedPushSender(inner, metrics)

    results = await sender.send([_message("t-1"), _message("t-2"), _message("t-gone")])
    results += await sender.send([_message("t-odd")])
    assert [r.ok for r in results] == [True, True, False, False]
    inner.down = True
    with pytest.raises(PushUnavailable):
        await sender.send([_message("t-3"), _message("t-4")])
    with pytest.raises(PushUnavailable):
        await sender.receipts(["a"])

    assert metrics.pushed == 2
    assert metrics.push_errors == {
        ("send", "DeviceNotRegistered"): 1,
        ("send", "other"): 1,  # a code we do not know is not a label of its own
        ("send", "unavailable"): 2,
        ("receipt", "unavailable"): 1,
    }
    assert [m.to for m in inner.sent] == ["t-1", "t-2"], "the wrapped sender sent them"


async def test_receipts_that_say_not_delivered_are_counted() -> None:
    inner = RecordingPushSender()
    inner.unregistered = {"t-gone"}
    metrics = MemoryMetrics()
    sender = ObservedPushSender(inner, metrics)
    sent = await sender.send([_message("t-1"), _message("t-gone")])
    receipts = await sender.receipts([r.ticket_id for r in sent if r.ticket_id])
    assert sorted(r.ok for r in receipts) == [False, True]
    assert metrics.push_errors == {("receipt", "DeviceNotRegistered"): 1}


async def test_a_job_failed_before_any_provider_took_it_counts_no_attempt(
    studio: Studio,
) -> None:
    """A job that failed before any provider took it (an internal error at claim) has
    no provider: its end counts, no attempt does."""
    metrics = observed(studio)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    await studio.processor.fail(job.id, JobError(FailureReason.INTERNAL, "bug"))
    assert (await studio.job(job.id)).status is JobStatus.FAILED
    assert metrics.attempts == {}
    assert metrics.finished == {("image", "failed"): 1}
