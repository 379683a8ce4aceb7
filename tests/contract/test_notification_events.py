"""What the purchase and processing use cases tell the user (issue #18), each in the
transaction of its cause, over every unit-of-work adapter: credits clawed back by a
refund, a subscription renewed / in grace / expiring / expired, training progress at
25/50/75 %; and the push kicked after a grant's commit."""

from __future__ import annotations

import uuid
from datetime import timedelta

from genstudio.adapters.memory.clock import FakeClock
from genstudio.core.model.jobs import JobStatus
from genstudio.core.model.notifications import EventKind, Notification
from genstudio.core.model.purchases.products import Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Revocation,
    RevocationReason,
)
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.services.notifications.emit import Notifier
from genstudio.core.services.processing.leases import Leases
from genstudio.core.services.purchases.claims import redeem_purchase
from genstudio.core.services.purchases.notifications import apply_store_event, handle_notification
from genstudio.ports.gpu import Pending
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from tests.contract.test_store_repositories import CATALOG, T0, claim, pack, plan
from tests.unit.support import open_account
from tests.unit.test_training_jobs import training_job


async def told(uow_factory: UnitOfWorkFactory, user: uuid.UUID) -> list[Notification]:
    async with uow_factory() as uow:
        return await uow.notifications.inbox(user, before=None, limit=50)


def kinds(notes: list[Notification]) -> list[EventKind]:
    return sorted(n.kind for n in notes)


async def test_a_refund_that_claws_credits_back_tells_the_user_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"
    await claim(uow_factory, pack(user, tx), user)
    refund = Revocation(
        store=Store.APPLE,
        occurred_at=T0 + timedelta(days=1),
        transaction_id=tx,
        original_transaction_id=tx,
        reason=RevocationReason.REFUND,
    )
    for _ in range(2):  # the store's redelivery, applied again, tells nothing new
        async with uow_factory() as uow:
            await apply_store_event(uow, refund, catalog=CATALOG, now=T0 + timedelta(days=1))
            await uow.commit()
    notes = await told(uow_factory, user)
    clawed = [n for n in notes if n.kind is EventKind.CREDITS_CLAWED_BACK]
    assert [n.data["amount"] for n in clawed] == [100]


async def test_a_refund_rolled_back_with_its_transaction_tells_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"
    await claim(uow_factory, pack(user, tx), user)
    refund = Revocation(
        store=Store.APPLE,
        occurred_at=T0,
        transaction_id=tx,
        original_transaction_id=tx,
        reason=RevocationReason.REFUND,
    )
    async with uow_factory() as uow:
        await apply_store_event(uow, refund, catalog=CATALOG, now=T0)  # no commit
    assert EventKind.CREDITS_CLAWED_BACK not in kinds(await told(uow_factory, user))


async def test_a_subscription_tells_its_renewal_grace_auto_renew_off_and_end(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    original = f"sub-{uuid.uuid4()}"
    month = timedelta(days=30)
    news = [
        plan(user, original),  # bought: told as credits granted, not as a change
        plan(user, original, tx=f"{original}-2", start=T0 + month),  # renewed
        plan(
            user,
            original,
            tx=f"{original}-2",
            start=T0 + month,
            status=EntitlementStatus.GRACE_PERIOD,
            at=T0 + 2 * month,
        ),
        plan(user, original, tx=f"{original}-3", start=T0 + 2 * month),  # renewed
        plan(  # auto-renew turned off during that month
            user,
            original,
            tx=f"{original}-3",
            start=T0 + 2 * month,
            auto_renew=False,
            status=EntitlementStatus.AUTO_RENEW_OFF,
            at=T0 + 2 * month + timedelta(days=3),
        ),
        plan(
            user,
            original,
            tx=f"{original}-3",
            start=T0 + 2 * month,
            status=EntitlementStatus.EXPIRED,
            at=T0 + 3 * month,
        ),
    ]
    for event in [*news, news[-1]]:  # the last one redelivered: nothing twice
        async with uow_factory() as uow:
            await apply_store_event(uow, event, catalog=CATALOG, now=event.occurred_at)
            await uow.commit()
    about_plan = [n for n in await told(uow_factory, user) if n.kind.startswith("subscription_")]
    assert kinds(about_plan) == sorted(
        [
            EventKind.SUBSCRIPTION_RENEWED,
            EventKind.SUBSCRIPTION_RENEWED,
            EventKind.SUBSCRIPTION_IN_GRACE,
            EventKind.SUBSCRIPTION_EXPIRING,
            EventKind.SUBSCRIPTION_EXPIRED,
        ]
    )
    assert {n.data["productId"] for n in about_plan} == {n.data["plan"] for n in about_plan}
    assert len({n.data["productId"] for n in about_plan}) == 1


async def test_training_progress_is_told_at_25_50_and_75_percent_only(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    clock = FakeClock(T0)
    job = training_job(JobStatus.RUNNING, 5, user_id=user, lease_owner="w1")
    job = job.leased("w1", T0 + timedelta(seconds=30), T0)
    async with uow_factory() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    leases = Leases(uow_factory, clock, QueuePolicy(), "w1", notifier=Notifier())
    for progress in (10, 20, 30, 30, 45, 80, 90, 99):
        clock.advance(1)
        job = await leases.report(job, Pending(progress=progress, started=True))
    notes = [n for n in await told(uow_factory, user) if n.kind is EventKind.TRAINING_PROGRESS]
    # 50 was passed in the jump from 45 to 80 together with 75: the latest is told
    assert sorted(int(str(n.data["progress"])) for n in notes) == [25, 75]
    assert {n.data["jobId"] for n in notes} == {str(job.id)}


async def test_a_purchase_and_a_store_notification_kick_the_push_after_their_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    kicks: list[str] = []

    async def kick() -> None:
        kicks.append("kick")

    tx = f"t-{uuid.uuid4()}"
    done = await redeem_purchase(
        uow_factory, pack(user, tx), user_id=user, email=None, catalog=CATALOG, now=T0, kick=kick
    )
    assert done.outcome.credits_granted == 100 and kicks == ["kick"]
    replay = await redeem_purchase(
        uow_factory, pack(user, tx), user_id=user, email=None, catalog=CATALOG, now=T0, kick=kick
    )
    assert replay.outcome.replayed and kicks == ["kick"]  # nothing new told: no kick
    await handle_notification(
        uow_factory,
        store=Store.APPLE,
        notification_id=f"n-{uuid.uuid4()}",
        kind="REFUND",
        events=[
            Revocation(
                store=Store.APPLE,
                occurred_at=T0,
                transaction_id=tx,
                original_transaction_id=tx,
                reason=RevocationReason.REFUND,
            )
        ],
        catalog=CATALOG,
        now=T0,
        kick=kick,
    )
    assert kicks == ["kick", "kick"]
    assert kinds(await told(uow_factory, user)) == sorted(
        [EventKind.CREDITS_GRANTED, EventKind.CREDITS_CLAWED_BACK]
    )
