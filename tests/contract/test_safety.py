"""Reports, blocks, moderators' actions and account deletion (issue #17), through the
use cases, over every unit-of-work adapter (memory, Postgres)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from genstudio.adapters.memory.accounts import LocalAccountDirectory
from genstudio.adapters.memory.clock import FakeClock
from genstudio.adapters.memory.storage import InMemoryStorage
from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.safety import (
    Action,
    AlreadyReported,
    ReportClosed,
    ReportReason,
    ReportStatus,
    TargetKind,
)
from genstudio.core.model.social import FeedSort, PostState, Visibility
from genstudio.core.services.safety.accounts import AccountDeletion
from genstudio.core.services.safety.moderation import Moderation
from genstudio.core.services.safety.reports import Reports
from genstudio.core.services.social.posts import Posts
from genstudio.core.services.social.views import Urls
from genstudio.ports.storage import ObjectNotFound
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
SPAM = ReportReason.SPAM


class World:
    def __init__(self, factory: UnitOfWorkFactory) -> None:
        self.factory = factory
        self.storage = InMemoryStorage()
        self.clock = FakeClock(T0)
        self.posts = Posts(factory, Urls(self.storage, "http://api.test"))
        self.reports = Reports(factory, to_hide=3)
        self.moderation = Moderation(factory)
        self.directory = LocalAccountDirectory()
        self.deletion = AccountDeletion(factory, self.storage, self.clock, self.directory)

    async def user(self) -> uuid.UUID:
        user_id = uuid.uuid4()
        async with self.factory() as uow:
            await uow.profiles.ensure(user_id, f"{user_id.hex[:8]}@example.com")
            await uow.commit()
        return user_id

    async def asset(self, user_id: uuid.UUID) -> MediaAsset:
        media_id = uuid.uuid4()
        asset = MediaAsset(
            id=media_id,
            user_id=user_id,
            kind=MediaKind.IMAGE,
            storage_key=f"{user_id}/{media_id}.png",
            content_type="image/png",
            width=64,
            height=64,
            byte_size=3,
            prompt="a cat",
            model_id="m",
            job_id=None,
            created_at=T0,
        )
        await self.storage.put(asset.storage_key, b"png", "image/png")
        async with self.factory() as uow:
            await uow.media.add(asset)
            await uow.commit()
        return asset

    async def post(self, user_id: uuid.UUID) -> uuid.UUID:
        asset = await self.asset(user_id)
        item = await self.posts.publish(
            user_id, None, asset_id=asset.id, caption="hi", visibility=Visibility.PUBLIC, now=T0
        )
        return item.view.post.id

    async def report(self, reporter: uuid.UUID, kind: TargetKind, target: uuid.UUID) -> uuid.UUID:
        report = await self.reports.report(
            reporter, None, kind=kind, target_id=target, reason=SPAM, details=None, now=T0
        )
        return report.id

    async def feed(self, viewer: uuid.UUID) -> list[uuid.UUID]:
        page = await self.posts.feed(
            viewer, sort=FeedSort.NEW, kind=None, after=None, now=T0, limit=100
        )
        return [i.view.post.id for i in page.items]

    async def state(self, post_id: uuid.UUID) -> PostState:
        async with self.factory() as uow:
            post = await uow.social.get_post(post_id)
        assert post is not None
        return post.state


@pytest.fixture
def world(uow_factory: UnitOfWorkFactory) -> World:
    return World(uow_factory)


async def test_one_open_report_per_reporter_and_target(world: World) -> None:
    author, reporter = await world.user(), await world.user()
    post = await world.post(author)
    await world.report(reporter, TargetKind.POST, post)
    with pytest.raises(AlreadyReported):
        await world.report(reporter, TargetKind.POST, post)
    # another target, or the user, is another report
    await world.report(reporter, TargetKind.USER, author)
    mine = await world.reports.mine(reporter)
    assert {r.target_kind for r in mine} == {TargetKind.POST, TargetKind.USER}


async def test_reporting_what_one_cannot_reach_or_owns_is_refused(world: World) -> None:
    author, reporter = await world.user(), await world.user()
    post = await world.post(author)
    with pytest.raises(NotFound) as missing:
        await world.report(reporter, TargetKind.POST, uuid.uuid4())
    assert missing.value.field == "targetId"
    with pytest.raises(InvalidInput):
        await world.report(author, TargetKind.POST, post)
    await world.reports.block(author, None, reporter, T0)
    with pytest.raises(NotFound):
        await world.report(reporter, TargetKind.POST, post)
    with pytest.raises(InvalidInput) as long:
        await world.reports.report(
            reporter,
            None,
            kind=TargetKind.USER,
            target_id=author,
            reason=SPAM,
            details="x" * 1001,
            now=T0,
        )
    assert long.value.field == "details"


async def test_a_post_reported_by_three_distinct_users_at_once_is_hidden(world: World) -> None:
    author, viewer = await world.user(), await world.user()
    reporters = [await world.user() for _ in range(3)]
    post = await world.post(author)
    await world.report(reporters[0], TargetKind.POST, post)
    assert await world.state(post) is PostState.VISIBLE
    # the last two at once: each counts the other (the post's row is locked first)
    await asyncio.gather(*(world.report(r, TargetKind.POST, post) for r in reporters[1:]))
    assert await world.state(post) is PostState.HIDDEN
    assert post not in await world.feed(viewer)
    assert (await world.posts.get(post, author)).view.post.id == post  # its author sees it
    with pytest.raises(NotFound):
        await world.posts.get(post, viewer)
    log = await world.moderation.audit_log(post)
    assert [(e.action, e.actor_id) for e in log] == [("hidden_by_reports", None)]


async def test_dismissing_restores_a_hidden_post_and_settles_every_report_once(
    world: World,
) -> None:
    author, operator = await world.user(), uuid.uuid4()
    post = await world.post(author)
    ids = [await world.report(await world.user(), TargetKind.POST, post) for _ in range(3)]
    assert await world.state(post) is PostState.HIDDEN
    resolved = await world.moderation.resolve(
        operator, ids[0], action=Action.DISMISS, note="satire", now=T0
    )
    assert resolved.status is ReportStatus.DISMISSED and resolved.resolved_by == operator
    assert await world.state(post) is PostState.VISIBLE
    async with world.factory() as uow:
        for report_id in ids:
            report = await uow.safety.get_report(report_id)
            assert report is not None and report.status is ReportStatus.DISMISSED
    with pytest.raises(ReportClosed):
        await world.moderation.resolve(operator, ids[1], action=Action.RESTORE, note="", now=T0)
    entries = await world.moderation.audit_log(post)
    assert entries[0].action == "dismiss" and entries[0].actor_id == operator
    assert entries[0].note == "satire" and entries[0].report_id == ids[0]


async def test_removing_a_comment_and_suspending_its_author(world: World) -> None:
    author, troll, reporter, operator = (
        await world.user(),
        await world.user(),
        await world.user(),
        uuid.uuid4(),
    )
    post = await world.post(author)
    trolls_post = await world.post(troll)
    comment = await world.posts.comment(troll, None, post, "buy followers", T0)
    first = await world.report(reporter, TargetKind.COMMENT, comment.view.comment.id)
    await world.moderation.resolve(
        operator, first, action=Action.REMOVE_CONTENT, note="spam", now=T0
    )
    page = await world.posts.comments(post, author, after=None)
    assert page.items == []
    second = await world.report(reporter, TargetKind.USER, troll)
    with pytest.raises(InvalidInput):
        await world.moderation.resolve(
            operator, second, action=Action.REMOVE_CONTENT, note="", now=T0
        )
    await world.moderation.resolve(operator, second, action=Action.SUSPEND_USER, note="", now=T0)
    async with world.factory() as uow:
        assert await uow.safety.suspended(troll)
    assert trolls_post not in await world.feed(reporter)
    actions = [e.action for e in await world.moderation.audit_log(None)]
    assert actions[:2] == ["suspend_user", "remove_content"]
    assert [e.action for e in await world.moderation.audit_log(troll)] == ["suspend_user"]


async def test_blocks_hide_comments_and_refuse_likes_and_comments(world: World) -> None:
    a, b = await world.user(), await world.user()
    post = await world.post(a)
    await world.posts.comment(b, None, post, "nice", T0)
    assert len((await world.posts.comments(post, a, after=None)).items) == 1
    await world.reports.block(a, None, b, T0)
    await world.reports.block(a, None, b, T0)  # idempotent
    assert [x.blocked_id for x in await world.reports.blocks(a)] == [b]
    assert (await world.posts.comments(post, a, after=None)).items == []
    with pytest.raises(NotFound):
        await world.posts.like(b, None, post, T0)
    with pytest.raises(NotFound):
        await world.posts.comment(b, None, post, "again", T0)
    assert post not in await world.feed(b)
    await world.reports.unblock(a, b)
    await world.reports.unblock(a, b)  # idempotent
    assert await world.reports.blocks(a) == []
    await world.posts.like(b, None, post, T0)
    with pytest.raises(InvalidInput):
        await world.reports.block(a, None, a, T0)
    with pytest.raises(NotFound):
        await world.reports.block(a, None, uuid.uuid4(), T0)


async def test_deleting_an_account_leaves_nothing_of_it_visible_and_keeps_the_books(
    world: World,
) -> None:
    a, b = await world.user(), await world.user()
    a_post = await world.post(a)
    b_post = await world.post(b)
    await world.posts.like(b, None, a_post, T0)
    await world.posts.like(a, None, b_post, T0)
    await world.posts.comment(b, None, a_post, "nice", T0)
    async with world.factory() as uow:
        await uow.ledger.lock_account(b)
        b_keys = [
            m.storage_key for m in await uow.social.my_media(b, kind=None, after=None, limit=10)
        ]
    await world.report(b, TargetKind.POST, a_post)

    await world.deletion.delete(b, "token")
    await world.deletion.delete(b, "token")  # idempotent: the same answer

    assert world.directory.revoked == [b, b]
    feed = await world.feed(a)
    assert a_post in feed and b_post not in feed
    viewed = await world.posts.get(a_post, a)
    assert viewed.view.post.like_count == 0 and viewed.view.post.comment_count == 0
    assert (await world.posts.comments(a_post, a, after=None)).items == []
    for key in b_keys:
        with pytest.raises(ObjectNotFound):
            await world.storage.get(key)
    async with world.factory() as uow:
        profile = await uow.profiles.get(b)
        assert profile is not None and profile.email is None
        assert await uow.safety.erased_at(b) is not None
        assert await uow.social.get_post(b_post) is None
        # every file was deleted and its intent settled: nothing left for the sweep
        stale = await uow.uploads.stale(datetime(2100, 1, 1, tzinfo=UTC), limit=10_000)
        assert b_keys and not set(b_keys) & set(stale)
    with pytest.raises(NotFound):
        await world.reports.block(a, None, b, T0)


async def test_deleting_an_account_that_never_signed_in_only_revokes(world: World) -> None:
    ghost = uuid.uuid4()
    await world.deletion.delete(ghost, None)
    assert world.directory.revoked == [ghost]
