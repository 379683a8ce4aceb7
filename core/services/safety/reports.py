"""Reporting content and users, blocking, and what operators do with reports.

A user reports only what they can reach (a post or comment they may see, a user
who exists and was not erased); anything else is a 404 naming ``targetId``, like
the social side's reads. Their own content or themselves: 422. The report that
brings a post to ``reports_to_hide`` distinct open reporters hides it in its own
transaction (the post's row is locked first, so reports at once count each other),
and the hiding goes to the audit log with no actor (the system).

Blocks are written through the social repository, whose reads exclude both
directions; a block of oneself is a 422, of a user without a profile a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import DuplicateEntry, InvalidInput, NotFound
from genstudio.core.model.ids import uuid7
from genstudio.core.model.safety import (
    MAX_DETAILS,
    PAGE,
    REPORTS_TO_HIDE,
    AlreadyReported,
    AuditEntry,
    Block,
    Report,
    ReportReason,
    ReportStatus,
    TargetKind,
)
from genstudio.core.model.social import PostState, check_text
from genstudio.core.services.social.posts import _reach
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory


class Reports:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, to_hide: int = REPORTS_TO_HIDE) -> None:
        self.uow_factory = uow_factory
        self.to_hide = to_hide

    async def report(
        self,
        reporter: uuid.UUID,
        email: str | None,
        *,
        kind: TargetKind,
        target_id: uuid.UUID,
        reason: ReportReason,
        details: str | None,
        now: datetime,
    ) -> Report:
        """Raises NotFound (``targetId``), InvalidInput (own content, ``details``) and
        AlreadyReported (an open report by the reporter on the target)."""
        text = check_text(details, "details", MAX_DETAILS)
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(reporter, email)
            target_user = await self._target_user(uow, reporter, kind, target_id)
            if target_user == reporter:
                raise InvalidInput(
                    "one cannot report oneself or one's own content", field="targetId"
                )
            report = Report(
                id=uuid7(),
                reporter_id=reporter,
                target_kind=kind,
                target_id=target_id,
                target_user_id=target_user,
                reason=reason,
                details=text,
                status=ReportStatus.OPEN,
                created_at=now,
            )
            try:
                await uow.safety.add_report(report)
                if kind is TargetKind.POST:
                    await self._hide_if_reported(uow, target_id, now)
                await uow.commit()
            except DuplicateEntry:
                raise AlreadyReported(
                    "you reported this already; it is being reviewed", field="targetId"
                ) from None
        return report

    async def _target_user(
        self, uow: UnitOfWork, reporter: uuid.UUID, kind: TargetKind, target_id: uuid.UUID
    ) -> uuid.UUID:
        """The reported content's author (or the reported user), if the reporter may
        reach it; else NotFound."""
        try:
            if kind is TargetKind.POST:
                await uow.safety.lock_post(target_id)  # reports at once count each other
                return (await _reach(uow, target_id, reporter)).user_id
            if kind is TargetKind.COMMENT:
                comment = await uow.social.get_comment(target_id)
                if comment is None or comment.state is not PostState.VISIBLE:
                    raise NotFound(f"no comment {target_id}")
                await _reach(uow, comment.post_id, reporter)
                if await uow.social.blocked_between(reporter, comment.user_id):
                    raise NotFound(f"no comment {target_id}")
                return comment.user_id
            profile = await uow.profiles.get(target_id)
            if profile is None or await uow.safety.erased_at(target_id) is not None:
                raise NotFound(f"no user {target_id}")
            return target_id
        except NotFound as exc:
            raise NotFound(exc.message, field="targetId") from None

    async def _hide_if_reported(self, uow: UnitOfWork, post_id: uuid.UUID, now: datetime) -> None:
        post = await uow.social.get_post(post_id)
        if post is None or post.state is not PostState.VISIBLE:
            return
        if await uow.safety.open_reporters(TargetKind.POST, post_id) < self.to_hide:
            return
        hidden = msgspec.structs.replace(post, state=PostState.HIDDEN, updated_at=now)
        await uow.social.update_post(hidden)  # pending review
        await uow.safety.audit(
            AuditEntry(
                id=uuid7(),
                actor_id=None,
                action="hidden_by_reports",
                target_kind=TargetKind.POST,
                target_id=post_id,
                report_id=None,
                note=f"{self.to_hide} distinct reporters",
                created_at=now,
            )
        )

    async def mine(self, reporter: uuid.UUID) -> list[Report]:
        async with self.uow_factory() as uow:
            return await uow.safety.my_reports(reporter, limit=PAGE)

    # --- blocks ----------------------------------------------------------------------

    async def block(
        self, user_id: uuid.UUID, email: str | None, blocked: uuid.UUID, now: datetime
    ) -> None:
        """Idempotent. Raises InvalidInput (oneself) and NotFound (no such user)."""
        if blocked == user_id:
            raise InvalidInput("one cannot block oneself", field="userId")
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            if (
                await uow.profiles.get(blocked) is None
                or await uow.safety.erased_at(blocked) is not None
            ):
                raise NotFound(f"no user {blocked}", field="userId")
            await uow.social.block(user_id, blocked, now)
            await uow.commit()

    async def unblock(self, user_id: uuid.UUID, blocked: uuid.UUID) -> None:
        """Idempotent: unblocking someone not blocked is not an error."""
        async with self.uow_factory() as uow:
            await uow.social.unblock(user_id, blocked)
            await uow.commit()

    async def blocks(self, user_id: uuid.UUID) -> list[Block]:
        async with self.uow_factory() as uow:
            return await uow.safety.blocks(user_id, limit=1000)
