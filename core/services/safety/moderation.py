"""What operators (service-role token) do with reports; each action is audited.

One resolution answers every open report on the same target, and is written to the
audit log (who, what, when, target, note) in the transaction that acts. A report
that is no longer open is a 409 ``report_closed``: a decision is made once.

- ``remove_content``: the post or comment is ``removed`` (its author still sees it,
  marked; nobody else does).
- ``restore``: a hidden or removed post or comment is ``visible`` again.
- ``suspend_user``: the target's author (or the reported user) is suspended and
  their visible posts hidden.
- ``dismiss``: nothing wrong; a post hidden by reports is visible again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.ids import uuid7
from genstudio.core.model.safety import (
    MAX_NOTE,
    PAGE,
    Action,
    AuditEntry,
    Report,
    ReportClosed,
    ReportStatus,
    TargetKind,
    outcome,
)
from genstudio.core.model.social import PostState, check_text
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

Cursor = tuple[datetime, uuid.UUID]


class Moderation:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    async def reports(
        self, status: ReportStatus | None, *, after: Cursor | None, limit: int = PAGE
    ) -> tuple[list[Report], Cursor | None]:
        """Oldest first, and the cursor of the next page (None: the last)."""
        async with self.uow_factory() as uow:
            rows = await uow.safety.list_reports(status, after=after, limit=limit + 1)
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], (last.created_at, last.id)

    async def audit_log(self, target_id: uuid.UUID | None) -> list[AuditEntry]:
        async with self.uow_factory() as uow:
            return await uow.safety.audit_log(target_id=target_id, limit=200)

    async def resolve(
        self,
        operator: uuid.UUID,
        report_id: uuid.UUID,
        *,
        action: Action,
        note: str | None,
        now: datetime,
    ) -> Report:
        """Raises NotFound, ReportClosed and InvalidInput (an action the target's kind
        does not take: removing or restoring a user)."""
        text = check_text(note, "note", MAX_NOTE)
        async with self.uow_factory() as uow:
            report = await uow.safety.get_report(report_id, lock=True)
            if report is None:
                raise NotFound(f"no report {report_id}")
            if report.status is not ReportStatus.OPEN:
                raise ReportClosed(f"this report was {report.status.value} already")
            await self._act(uow, report, action, now)
            await uow.safety.settle_reports(
                report.target_kind,
                report.target_id,
                status=outcome(action),
                action=action,
                by=operator,
                at=now,
            )
            await uow.safety.audit(
                AuditEntry(
                    id=uuid7(),
                    actor_id=operator,
                    action=action.value,
                    target_kind=report.target_kind,
                    target_id=report.target_id,
                    report_id=report.id,
                    note=text,
                    created_at=now,
                )
            )
            resolved = await uow.safety.get_report(report_id)
            await uow.commit()
        assert resolved is not None
        return resolved

    async def _act(self, uow: UnitOfWork, report: Report, action: Action, now: datetime) -> None:
        kind = report.target_kind
        if action is Action.SUSPEND_USER:
            await uow.safety.suspend(report.target_user_id, now)
            return
        if kind is TargetKind.USER:
            if action is not Action.DISMISS:
                raise InvalidInput("a user is suspended or the report dismissed", field="action")
            return
        if action is Action.REMOVE_CONTENT:
            state = PostState.REMOVED
        elif action is Action.RESTORE:
            state = PostState.VISIBLE
        else:  # dismiss: what reports hid comes back; what an operator removed stays
            state = PostState.VISIBLE
        if kind is TargetKind.POST:
            post = await uow.social.get_post(report.target_id)
            if post is None or (action is Action.DISMISS and post.state is PostState.REMOVED):
                return  # deleted meanwhile (unpublished, account erased): nothing to act on
            await uow.social.update_post(msgspec.structs.replace(post, state=state, updated_at=now))
            return
        comment = await uow.social.get_comment(report.target_id)
        if comment is None or (action is Action.DISMISS and comment.state is PostState.REMOVED):
            return
        await uow.safety.set_comment_state(comment.id, state.value)
