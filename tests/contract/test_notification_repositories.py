"""The notification and push-token repositories' contract
(genstudio.ports.repositories.notifications), over every unit-of-work adapter (memory, Postgres).

The Postgres database is shared by the session: times are set in 2001, before any
other test's rows, so that a claim of due deliveries sees only this test's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.ids import uuid7
from genstudio.core.model.notifications import (
    Category,
    Channel,
    Delivery,
    DeliveryStatus,
    EventKind,
    Notification,
    Platform,
    Preferences,
    PushTicket,
    PushToken,
    QuietHours,
)
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2001, 1, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)


def note(user: uuid.UUID, at: datetime = T0, **kw: object) -> Notification:
    fields: dict[str, object] = {
        "id": uuid7(),
        "user_id": user,
        "kind": EventKind.JOB_SUCCEEDED,
        "category": Category.GENERATION,
        "data": {"jobId": "j1", "credits": 0},
        "created_at": at,
        "updated_at": at,
        **kw,
    }
    return Notification(**fields)  # type: ignore[arg-type]


def delivery(n: Notification, seq: int = 1, due: datetime = T0) -> Delivery:
    return Delivery(
        id=uuid7(),
        notification_id=n.id,
        user_id=n.user_id,
        seq=seq,
        status=DeliveryStatus.PENDING,
        due_at=due,
        created_at=T0,
    )


def device(user: uuid.UUID, name: str, at: datetime = T0) -> PushToken:
    return PushToken(
        token=f"ExponentPushToken[{name}-{uuid.uuid4().hex[:12]}]",
        user_id=user,
        platform=Platform.ANDROID,
        device_id=name,
        app_version="1.0",
        active=True,
        created_at=at,
        updated_at=at,
    )


async def user(uow_factory: UnitOfWorkFactory) -> uuid.UUID:
    me = uuid.uuid4()
    async with uow_factory() as uow:
        await uow.profiles.ensure(me, None)
        await uow.commit()
    return me


async def test_an_event_key_is_claimed_once_per_user(uow_factory: UnitOfWorkFactory) -> None:
    me, other = await user(uow_factory), await user(uow_factory)
    async with uow_factory() as uow:
        assert await uow.notifications.claim_key(me, "job_succeeded:1", uuid7())
        assert not await uow.notifications.claim_key(me, "job_succeeded:1", uuid7())
        assert await uow.notifications.claim_key(other, "job_succeeded:1", uuid7())
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.notifications.claim_key(me, "job_succeeded:1", uuid7())


async def test_a_rolled_back_claim_leaves_the_key_free(uow_factory: UnitOfWorkFactory) -> None:
    me = await user(uow_factory)
    async with uow_factory() as uow:
        assert await uow.notifications.claim_key(me, "k", uuid7())
    async with uow_factory() as uow:
        assert await uow.notifications.claim_key(me, "k", uuid7())


async def test_notifications_are_read_back_as_written_and_updated(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await user(uow_factory)
    first = note(me, group="jobs", group_until=T0 + 600 * S)
    second = note(me, T0 + S, kind=EventKind.LOW_BALANCE, category=Category.ACCOUNT_AND_BILLING)
    async with uow_factory() as uow:
        await uow.notifications.add(first)
        await uow.notifications.add(second)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.get(first.id) == first
        assert await uow.notifications.get_many([first.id, second.id, uuid7()]) == {
            first.id: first,
            second.id: second,
        }
        assert await uow.notifications.get_many([]) == {}
        counted = msgspec.structs.replace(first, count=2, updated_at=T0 + 2 * S)
        await uow.notifications.update(counted)
        with pytest.raises(NotFound):
            await uow.notifications.update(note(me))
    async with uow_factory() as uow:
        assert await uow.notifications.get(first.id) == first  # rolled back


async def test_an_open_group_is_found_only_within_its_window(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await user(uow_factory)
    burst = note(me, group="jobs", group_until=T0 + 600 * S)
    async with uow_factory() as uow:
        await uow.notifications.add(burst)
        await uow.commit()
    async with uow_factory() as uow:
        repo = uow.notifications
        assert await repo.open_group(me, EventKind.JOB_SUCCEEDED, "jobs", T0 + S) == burst
        assert await repo.open_group(me, EventKind.JOB_SUCCEEDED, "jobs", T0 + 600 * S) is None
        assert await repo.open_group(me, EventKind.JOB_SUCCEEDED, "post:1", T0 + S) is None
        assert await repo.open_group(me, EventKind.POST_LIKED, "jobs", T0 + S) is None


async def test_the_inbox_pages_newest_first_shows_only_inbox_rows_and_counts_unread(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me, other = await user(uow_factory), await user(uow_factory)
    mine = [note(me, T0 + i * S) for i in range(5)]
    hidden = note(me, T0 + 9 * S, in_inbox=False)
    async with uow_factory() as uow:
        for n in [*mine, hidden, note(other, T0)]:
            await uow.notifications.add(n)
        await uow.commit()
    async with uow_factory() as uow:
        repo = uow.notifications
        page = await repo.inbox(me, before=None, limit=3)
        assert [n.id for n in page] == [mine[4].id, mine[3].id, mine[2].id]
        last = page[-1]
        rest = await repo.inbox(me, before=(last.updated_at, last.id), limit=3)
        assert [n.id for n in rest] == [mine[1].id, mine[0].id]
        assert await repo.unread_count(me) == 5
        assert await repo.mark_read(me, [mine[0].id, mine[1].id, uuid7()], T0 + 20 * S) == 2
        assert await repo.mark_read(other, [mine[2].id], T0 + 20 * S) == 0  # not theirs
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.unread_count(me) == 3
        assert await uow.notifications.mark_read(me, None, T0 + 30 * S) == 3
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.unread_count(me) == 0
        assert await uow.notifications.unread_count(other) == 1


async def test_one_delivery_per_notification_and_seq(uow_factory: UnitOfWorkFactory) -> None:
    me = await user(uow_factory)
    n = note(me)
    first, summary = delivery(n, 1), delivery(n, 2, T0 + 600 * S)
    async with uow_factory() as uow:
        await uow.notifications.add(n)
        await uow.notifications.add_delivery(first)
        await uow.commit()
    with pytest.raises(DuplicateEntry):
        async with uow_factory() as uow:
            await uow.notifications.add_delivery(delivery(n, 1))
            await uow.commit()
    async with uow_factory() as uow:
        await uow.notifications.add_delivery(summary)
        assert await uow.notifications.last_seq(n.id) == 2
        assert await uow.notifications.pending_delivery(n.id) == summary
        assert await uow.notifications.last_seq(uuid7()) == 0


async def test_due_deliveries_are_claimed_with_a_lease_that_another_takes_once_it_ran_out(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # the only deliveries due before 2001 in the shared database: this test's
    t0 = T0 - timedelta(days=3650)
    me = await user(uow_factory)
    notes = [note(me, t0) for _ in range(3)]
    due = [delivery(notes[0], due=t0), delivery(notes[1], due=t0 + S)]
    later = delivery(notes[2], due=t0 + 3600 * S)
    async with uow_factory() as uow:
        for n in notes:
            await uow.notifications.add(n)
        for d in [*due, later]:
            await uow.notifications.add_delivery(d)
        await uow.commit()
    now = t0 + 2 * S
    async with uow_factory() as uow:
        claimed = await uow.notifications.claim_due(now, now + 60 * S, 10)
        await uow.commit()
    assert [d.id for d in claimed] == [d.id for d in due]  # oldest first, the later one not
    assert all(d.claimed_until == now + 60 * S for d in claimed)
    async with uow_factory() as uow:  # held: nothing for another sender
        assert await uow.notifications.claim_due(now + S, now + 61 * S, 10) == []
    async with uow_factory() as uow:  # the lease ran out: free again
        again = await uow.notifications.claim_due(now + 60 * S, now + 120 * S, 1)
        await uow.commit()
    assert [d.id for d in again] == [due[0].id]


async def test_deliveries_are_read_under_lock_and_saved_in_one_go(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await user(uow_factory)
    notes = [note(me) for _ in range(2)]
    ds = [delivery(n, due=T0 + 7200 * S) for n in notes]
    async with uow_factory() as uow:
        for n, d in zip(notes, ds, strict=True):
            await uow.notifications.add(n)
            await uow.notifications.add_delivery(d)
        await uow.commit()
    sent = msgspec.structs.replace(
        ds[0], status=DeliveryStatus.SENT, finished_at=T0 + S, claimed_until=None
    )
    retry = msgspec.structs.replace(ds[1], attempts=1, due_at=T0 + 7300 * S, detail="429")
    async with uow_factory() as uow:
        found = await uow.notifications.get_deliveries([ds[1].id, ds[0].id, uuid7()], lock=True)
        assert found == {ds[0].id: ds[0], ds[1].id: ds[1]}
        missing = msgspec.structs.replace(sent, id=uuid7())
        await uow.notifications.save_deliveries([sent, retry, missing])  # missing: ignored
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.get_delivery(ds[0].id) == sent
        assert await uow.notifications.get_delivery(ds[1].id) == retry
        assert await uow.notifications.get_delivery(missing.id) is None
        with pytest.raises(NotFound):
            await uow.notifications.save_delivery(missing)


async def test_tickets_are_kept_until_their_receipts_are_read(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await user(uow_factory)
    n = note(me)
    d = delivery(n, due=T0 + 9000 * S)
    tag = uuid.uuid4().hex[:8]
    tickets = [
        PushTicket(id=f"t-{tag}-{i}", token="tok", delivery_id=d.id, created_at=T0 + i * S)
        for i in range(3)
    ]
    async with uow_factory() as uow:
        await uow.notifications.add(n)
        await uow.notifications.add_delivery(d)
        await uow.notifications.add_tickets(tickets)
        await uow.commit()
    async with uow_factory() as uow:
        old = await uow.notifications.tickets_before(T0 + 2 * S, 10)
        assert [t for t in old if t.id.startswith(f"t-{tag}")] == tickets[:2]
        await uow.notifications.delete_tickets([tickets[0].id])
        await uow.commit()
    async with uow_factory() as uow:
        left = await uow.notifications.tickets_before(T0 + 10 * S, 10)
        assert [t.id for t in left if t.id.startswith(f"t-{tag}")] == [
            tickets[1].id,
            tickets[2].id,
        ]


async def test_preferences_are_absent_until_saved_then_read_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me, other = await user(uow_factory), await user(uow_factory)
    chosen = Preferences(
        user_id=me,
        channels={
            Category.MARKETING: {Channel.PUSH: True},
            Category.SOCIAL: {Channel.IN_APP: False},
        },
        quiet_hours=QuietHours(start=time(22), end=time(7)),
        time_zone="Europe/Berlin",
        language="de",
        updated_at=T0,
    )
    async with uow_factory() as uow:
        assert await uow.notifications.preferences(me) is None
        await uow.notifications.save_preferences(chosen)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.preferences(me) == chosen
        assert await uow.notifications.preferences_of([me, other]) == {me: chosen}
        changed = msgspec.structs.replace(chosen, quiet_hours=None, language="es")
        await uow.notifications.save_preferences(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.preferences(me) == changed


async def test_a_push_token_belongs_to_the_last_user_who_registered_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me, other = await user(uow_factory), await user(uow_factory)
    phone, tablet = device(me, "phone"), device(me, "tablet", T0 + S)
    async with uow_factory() as uow:
        await uow.push_tokens.register(phone)
        await uow.push_tokens.register(tablet)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.push_tokens.active_of(me) == [phone, tablet]
        assert await uow.push_tokens.active_of_users([me, other]) == {me: [phone, tablet]}
        taken = msgspec.structs.replace(tablet, user_id=other, updated_at=T0 + 2 * S)
        await uow.push_tokens.register(taken)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.push_tokens.get(tablet.token) == taken
        assert await uow.push_tokens.active_of(me) == [phone]
        assert not await uow.push_tokens.remove(me, tablet.token)  # not mine any more
        assert await uow.push_tokens.remove(other, tablet.token)
        assert await uow.push_tokens.get(tablet.token) is None
        await uow.commit()


async def test_a_device_expo_says_is_gone_is_deactivated_until_registered_again(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await user(uow_factory)
    phone = device(me, "phone")
    async with uow_factory() as uow:
        await uow.push_tokens.register(phone)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.push_tokens.deactivate([phone.token, "ExponentPushToken[none]"], T0) == 1
        assert await uow.push_tokens.deactivate([phone.token], T0) == 0
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.push_tokens.active_of(me) == []
        assert await uow.push_tokens.active_of_users([me]) == {}
        gone = await uow.push_tokens.get(phone.token)
        assert gone is not None and not gone.active
        await uow.push_tokens.register(msgspec.structs.replace(phone, updated_at=T0 + S))
        await uow.commit()
    async with uow_factory() as uow:
        assert [t.token for t in await uow.push_tokens.active_of(me)] == [phone.token]
