"""Notifications on the memory adapters: what is told, to whom, on which channel, when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from genstudio.adapters.memory import FakeClock, InMemoryGpuProvider, InMemoryUnitOfWorkFactory
from genstudio.adapters.memory.push import RecordingPushSender
from genstudio.adapters.memory.realtime import RecordingRealtimePublisher
from genstudio.adapters.notification_texts import TemplateTexts
from genstudio.adapters.notification_texts.templates import DE, EN, ES
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.core.model.notifications import (
    Category,
    Channel,
    DeliveryStatus,
    Event,
    EventKind,
    Notification,
    NotificationPolicy,
    Preferences,
    QuietHours,
)
from genstudio.core.services.notifications.delivery import PushDelivery
from genstudio.core.services.notifications.emit import Notifier
from genstudio.core.services.notifications.settings import NotificationSettings, PreferencesChange
from genstudio.ports.push import DEVICE_NOT_REGISTERED, MESSAGE_TOO_BIG
from genstudio.ports.realtime import NOTIFICATION_CREATED
from tests.unit.support import Studio, open_account

TOKEN = "ExponentPushToken[abcdefghijklmnopqrstuv]"
TOKEN2 = "ExponentPushToken[zyxwvutsrqponmlkjihgfe]"


class World:
    def __init__(self) -> None:
        self.factory = InMemoryUnitOfWorkFactory()
        self.clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
        self.sender = RecordingPushSender()
        self.realtime = RecordingRealtimePublisher()
        self.kicks = 0
        self.notifier = Notifier(
            NotificationPolicy(aggregation_window=timedelta(minutes=10)),
            realtime=self.realtime,
            kick=self._kick,
        )
        self.delivery = PushDelivery(self.factory, self.sender, TemplateTexts(), self.clock)
        self.settings = NotificationSettings(self.factory, self.clock)

    async def _kick(self) -> None:
        self.kicks += 1

    async def user(self, *, token: str | None = TOKEN) -> uuid.UUID:
        user_id = await open_account(self.factory)
        if token:
            await self.settings.register_token(
                user_id, token=token, platform="ios", device_id="d1", app_version="1.0"
            )
        return user_id

    async def tell(self, event: Event, *, commit: bool = True) -> Notification | None:
        async with self.factory() as uow:
            told = await self.notifier.tell(uow, event, self.clock.now())
            if commit:
                await uow.commit()
        return told


def liked(user_id: uuid.UUID, post: str, actor: str) -> Event:
    return Event(
        user_id=user_id,
        kind=EventKind.POST_LIKED,
        key=f"like:{post}:{actor}",
        data={"postId": post, "postKind": "video", "actorName": actor},
        group=f"post:{post}",
    )


def done(user_id: uuid.UUID, job: str = "j1") -> Event:
    return Event(
        user_id=user_id,
        kind=EventKind.JOB_SUCCEEDED,
        key=f"job_succeeded:{job}",
        data={"jobId": job, "jobKind": "image"},
    )


# --- preferences and quiet hours ---------------------------------------------------


def test_every_category_is_on_by_default_except_marketing() -> None:
    prefs = Preferences(user_id=uuid.uuid4())
    for category in Category:
        for channel in Channel:
            assert prefs.allows(category, channel) is (category is not Category.MARKETING)


def test_quiet_hours_span_midnight_in_the_users_zone() -> None:
    prefs = Preferences(
        user_id=uuid.uuid4(),
        quiet_hours=QuietHours(start=time(22, 0), end=time(7, 0)),
        time_zone="Europe/Berlin",  # UTC+2 in June
    )
    # 21:30 UTC is 23:30 in Berlin: quiet until 07:00 Berlin, 05:00 UTC next day
    assert prefs.quiet_until(datetime(2026, 6, 1, 21, 30, tzinfo=UTC)) == datetime(
        2026, 6, 2, 5, 0, tzinfo=UTC
    )
    # 03:00 UTC is 05:00 in Berlin: quiet until 05:00 UTC the same day
    assert prefs.quiet_until(datetime(2026, 6, 2, 3, 0, tzinfo=UTC)) == datetime(
        2026, 6, 2, 5, 0, tzinfo=UTC
    )
    assert prefs.quiet_until(datetime(2026, 6, 1, 12, 0, tzinfo=UTC)) is None


async def test_a_patch_changes_only_what_it_names_and_checks_zone_and_language() -> None:
    w = World()
    user = await w.user(token=None)
    change = PreferencesChange(channels={Category.MARKETING: {Channel.PUSH: True}})
    prefs = await w.settings.change_preferences(user, change)
    assert prefs.allows(Category.MARKETING, Channel.PUSH)
    assert not prefs.allows(Category.MARKETING, Channel.IN_APP)
    prefs = await w.settings.change_preferences(user, PreferencesChange(language="de"))
    assert prefs.language == "de" and prefs.allows(Category.MARKETING, Channel.PUSH)
    with pytest.raises(InvalidInput) as zone:
        await w.settings.change_preferences(user, PreferencesChange(time_zone="Mars/Olympus"))
    assert zone.value.field == "timeZone"
    with pytest.raises(InvalidInput) as lang:
        await w.settings.change_preferences(user, PreferencesChange(language="xx"))
    assert lang.value.field == "language"


# --- telling ------------------------------------------------------------------------


async def test_an_event_is_one_inbox_row_one_push_and_one_realtime_event() -> None:
    w = World()
    user = await w.user()
    told = await w.tell(done(user))
    assert told is not None
    page = await w.settings.inbox(user, before=None, limit=20)
    assert [n.id for n in page.items] == [told.id] and page.unread == 1
    assert [e.event_type for e in w.realtime.of(user)] == [NOTIFICATION_CREATED]
    assert w.kicks == 1
    report = await w.delivery.deliver_due()
    assert report.sent == 1
    [message] = w.sender.sent
    assert message.to == TOKEN and message.title == "Your creation is ready"
    assert message.data["jobId"] == "j1" and message.data["notificationId"] == str(told.id)


async def test_telling_the_same_event_twice_writes_nothing_the_second_time() -> None:
    w = World()
    user = await w.user()
    assert await w.tell(done(user)) is not None
    assert await w.tell(done(user)) is None
    await w.delivery.deliver_due()
    await w.delivery.deliver_due()
    assert len(w.sender.sent) == 1
    assert (await w.settings.inbox(user, before=None, limit=20)).unread == 1


async def test_a_rolled_back_cause_leaves_no_notification_and_no_effect() -> None:
    w = World()
    user = await w.user()
    await w.tell(done(user), commit=False)
    assert (await w.settings.inbox(user, before=None, limit=20)).items == []
    assert w.realtime.events == [] and w.kicks == 0
    assert (await w.delivery.deliver_due()).handled == 0


async def test_push_off_for_a_category_keeps_the_inbox_and_sends_nothing() -> None:
    w = World()
    user = await w.user()
    off = PreferencesChange(channels={Category.GENERATION: {Channel.PUSH: False}})
    await w.settings.change_preferences(user, off)
    await w.tell(done(user))
    await w.delivery.deliver_due()
    assert w.sender.sent == []
    assert (await w.settings.inbox(user, before=None, limit=20)).unread == 1


async def test_in_app_off_hides_it_from_the_inbox_but_still_pushes() -> None:
    w = World()
    user = await w.user()
    off = PreferencesChange(channels={Category.GENERATION: {Channel.IN_APP: False}})
    await w.settings.change_preferences(user, off)
    await w.tell(done(user))
    await w.delivery.deliver_due()
    assert len(w.sender.sent) == 1
    assert (await w.settings.inbox(user, before=None, limit=20)).items == []
    assert w.realtime.events == []


async def test_marketing_is_told_to_nobody_who_did_not_opt_in() -> None:
    w = World()
    user = await w.user()
    news = Event(user_id=user, kind=EventKind.ANNOUNCEMENT, key="a1", data={"title": "Hi"})
    assert await w.tell(news) is None


async def test_quiet_hours_hold_the_push_until_they_end_and_the_inbox_gets_it_at_once() -> None:
    w = World()
    user = await w.user()
    quiet = QuietHours(start=time(11, 0), end=time(13, 0))  # now is 12:00 UTC
    await w.settings.change_preferences(user, PreferencesChange(quiet_hours=quiet))
    await w.tell(done(user))
    assert (await w.settings.inbox(user, before=None, limit=20)).unread == 1
    assert w.kicks == 0
    await w.delivery.deliver_due()
    assert w.sender.sent == []
    w.clock.advance(3600)  # 13:00: the quiet hours ended
    assert (await w.delivery.deliver_due()).sent == 1
    assert len(w.sender.sent) == 1


async def test_a_burst_of_likes_is_one_notification_and_one_summary_push() -> None:
    w = World()
    user = await w.user()
    first = await w.tell(liked(user, "p1", "Ann"))
    await w.delivery.deliver_due()
    assert [m.body for m in w.sender.sent] == ["Ann liked your video."]
    for actor in [f"fan{i}" for i in range(11)]:
        w.clock.advance(10)
        await w.tell(liked(user, "p1", actor))
    page = await w.settings.inbox(user, before=None, limit=20)
    assert [n.id for n in page.items] == [first.id if first else None]
    assert page.items[0].count == 12
    await w.delivery.deliver_due()
    assert len(w.sender.sent) == 1  # the summary waits for the window to end
    w.clock.advance(600)
    await w.delivery.deliver_due()
    assert [m.body for m in w.sender.sent][1] == "12 people liked your video."
    # after the window, a new like starts a new notification
    await w.tell(liked(user, "p1", "late"))
    assert len((await w.settings.inbox(user, before=None, limit=20)).items) == 2


async def test_the_inbox_pages_by_keyset_and_marks_read() -> None:
    w = World()
    user = await w.user(token=None)
    for i in range(5):
        w.clock.advance(1)
        await w.tell(
            Event(
                user_id=user,
                kind=EventKind.CREDITS_GRANTED,
                key=f"g{i}",
                data={"amount": i},
            )
        )
    first = await w.settings.inbox(user, before=None, limit=3)
    assert [n.data["amount"] for n in first.items] == [4, 3, 2]
    second = await w.settings.inbox(user, before=first.next_before, limit=3)
    assert [n.data["amount"] for n in second.items] == [1, 0] and second.next_before is None
    assert await w.settings.mark_read(user, [first.items[0].id, uuid.uuid4()]) == 1
    assert await w.settings.unread_count(user) == 4
    assert await w.settings.mark_read(user, None) == 4
    assert await w.settings.unread_count(user) == 0


# --- delivery -------------------------------------------------------------------------


async def test_a_device_not_registered_receipt_deactivates_the_token() -> None:
    w = World()
    user = await w.user()
    await w.tell(done(user))
    await w.delivery.deliver_due()
    w.sender.unregistered.add(TOKEN)
    assert await w.delivery.check_receipts() == 0  # too early: Expo needs time
    w.clock.advance(16 * 60)
    assert await w.delivery.check_receipts() == 1
    async with w.factory() as uow:
        assert await uow.push_tokens.active_of(user) == []
    await w.tell(done(user, "j2"))
    assert (await w.delivery.deliver_due()).skipped == 1


async def test_a_refused_token_is_deactivated_and_a_too_big_message_is_not_retried() -> None:
    w = World()
    user = await w.user()
    await w.settings.register_token(
        user, token=TOKEN2, platform="android", device_id="d2", app_version=None
    )
    w.sender.refused = {TOKEN: DEVICE_NOT_REGISTERED, TOKEN2: MESSAGE_TOO_BIG}
    await w.tell(done(user))
    report = await w.delivery.deliver_due()
    assert report.failed == 1
    async with w.factory() as uow:
        assert [t.token for t in await uow.push_tokens.active_of(user)] == [TOKEN2]
    w.clock.advance(3600)
    assert (await w.delivery.deliver_due()).handled == 0


async def test_push_down_is_retried_with_backoff_then_sent_once() -> None:
    w = World()
    user = await w.user()
    await w.tell(done(user))
    w.sender.down = True
    assert (await w.delivery.deliver_due()).retrying == 1
    assert (await w.delivery.deliver_due()).handled == 0  # waiting out the backoff
    w.sender.down = False
    w.clock.advance(60)
    assert (await w.delivery.deliver_due()).sent == 1
    assert len(w.sender.sent) == 1


async def test_a_delivery_claimed_by_a_sender_that_died_is_taken_over_after_its_lease() -> None:
    w = World()
    user = await w.user()
    await w.tell(done(user))
    async with w.factory() as uow:  # a sender claims, then dies before sending
        await uow.notifications.claim_due(w.clock.now(), w.clock.now() + timedelta(seconds=60), 10)
        await uow.commit()
    assert (await w.delivery.deliver_due()).handled == 0
    w.clock.advance(61)
    assert (await w.delivery.deliver_due()).sent == 1
    assert len(w.sender.sent) == 1
    async with w.factory() as uow:
        assert await uow.notifications.count_deliveries(DeliveryStatus.SENT) == 1


async def test_a_token_belongs_to_the_last_user_who_registered_it() -> None:
    w = World()
    alice = await w.user()
    bob = await w.user()  # registers the same device token
    async with w.factory() as uow:
        assert await uow.push_tokens.active_of(alice) == []
        assert [t.token for t in await uow.push_tokens.active_of(bob)] == [TOKEN]
    with pytest.raises(InvalidInput) as bad:
        await w.settings.register_token(
            bob, token="not-a-token", platform="ios", device_id="d", app_version=None
        )
    assert bad.value.field == "token"


# --- templates ----------------------------------------------------------------------


def _n(kind: EventKind, data: dict[str, str | int | bool | None], count: int = 1) -> Notification:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Notification(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        kind=kind,
        category=Category.GENERATION,
        data=data,
        created_at=now,
        updated_at=now,
        count=count,
    )


def test_templates_render_in_the_users_language_with_english_fallback() -> None:
    texts = TemplateTexts()
    ready = _n(EventKind.JOB_SUCCEEDED, {"jobKind": "video"})
    assert texts.render(ready, "en").body == "Your video is ready. Tap to see it."
    assert texts.render(ready, "de").body == "Dein Video ist fertig. Tippe, um es anzusehen."
    assert texts.render(ready, "es").title == "Tu creación está lista"
    assert texts.render(ready, "fr").title == "Your creation is ready"
    # a kind without a Spanish template is English, with English words in it
    training = _n(EventKind.TRAINING_FAILED, {"credits": 40})
    assert texts.render(training, "es").body.startswith("Your model could not be trained; 40")
    # a missing variable renders empty rather than failing the push
    assert texts.render(_n(EventKind.LOW_BALANCE, {}), "en").body == "You have  credits left."


def test_every_event_kind_has_an_english_template() -> None:
    for kind in EventKind:
        assert kind.value in EN, kind
    assert set(DE) <= set(EN) and set(ES) <= set(EN)


# --- from the use cases ----------------------------------------------------------------


async def test_a_job_that_succeeds_tells_its_owner_in_the_same_transaction() -> None:
    studio = Studio()
    user = await studio.user_with(100)
    job = await studio.submitted_job(user)
    await studio.drive(job.id)
    async with studio.factory() as uow:
        page = await uow.notifications.inbox(user, before=None, limit=10)
        assert [n.kind for n in page] == [EventKind.JOB_SUCCEEDED]
        assert page[0].data["jobId"] == str(job.id)
        assert await uow.notifications.count_deliveries(DeliveryStatus.PENDING) == 1


async def test_a_dead_lettered_job_tells_its_owner_the_credits_came_back() -> None:
    gpu = InMemoryGpuProvider()
    gpu.fail_with = JobError(FailureReason.INFRASTRUCTURE, "boom")
    studio = Studio(gpu)
    user = await studio.user_with(100)
    job = await studio.submitted_job(user)
    await studio.drive(job.id)
    async with studio.factory() as uow:
        [told] = await uow.notifications.inbox(user, before=None, limit=10)
    assert told.kind is EventKind.JOB_DEAD_LETTERED and told.data["credits"] == job.cost
