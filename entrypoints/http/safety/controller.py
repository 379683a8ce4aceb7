"""The trust-and-safety routes: reports, blocks, operators' decisions, account deletion."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from genstudio.core.model.limits import Operation
from genstudio.core.model.safety import ReportStatus
from genstudio.entrypoints.http.admin.controller import require_service
from genstudio.entrypoints.http.deps import (
    AccountDeletionDep,
    ClockDep,
    ModerationDep,
    PrincipalDep,
    ReportsDep,
)
from genstudio.entrypoints.http.safety.schemas import (
    AdminReport,
    AdminReportPage,
    AuditItem,
    AuditLog,
    BlockItem,
    BlockList,
    ReportList,
    ReportRequest,
    ReportResponse,
    ResolveRequest,
    decode_cursor,
    encode_cursor,
)

SOCIAL_WRITE = {"rate_limit": Operation.SOCIAL_WRITES}
Cursor = Annotated[str | None, QueryParameter(max_length=200)]
TargetQuery = Annotated[uuid.UUID | None, QueryParameter(name="targetId")]


class SafetyController(Controller):
    path = "/v1"
    tags = ["safety"]

    @post("/reports", status_code=201, summary="Report a post, comment or user", opt=SOCIAL_WRITE)
    async def report(
        self,
        principal: PrincipalDep,
        reports: ReportsDep,
        clock: ClockDep,
        data: JSONBody[ReportRequest],
    ) -> ReportResponse:
        report = await reports.report(
            principal.user_id,
            principal.email,
            kind=data.target_type,
            target_id=data.target_id,
            reason=data.reason,
            details=data.details,
            now=clock.now(),
        )
        return ReportResponse.of(report)

    @get("/reports", summary="My reports, newest first (50)")
    async def my_reports(self, principal: PrincipalDep, reports: ReportsDep) -> ReportList:
        return ReportList(
            items=[ReportResponse.of(r) for r in await reports.mine(principal.user_id)]
        )

    @put("/blocks/{user_id:uuid}", status_code=204, summary="Block a user", opt=SOCIAL_WRITE)
    async def block(
        self,
        principal: PrincipalDep,
        reports: ReportsDep,
        clock: ClockDep,
        user_id: FromPath[uuid.UUID],
    ) -> None:
        await reports.block(principal.user_id, principal.email, user_id, clock.now())

    @delete("/blocks/{user_id:uuid}", status_code=204, summary="Unblock a user", opt=SOCIAL_WRITE)
    async def unblock(
        self, principal: PrincipalDep, reports: ReportsDep, user_id: FromPath[uuid.UUID]
    ) -> None:
        await reports.unblock(principal.user_id, user_id)

    @get("/blocks", summary="Whom I blocked, latest first")
    async def blocks(self, principal: PrincipalDep, reports: ReportsDep) -> BlockList:
        return BlockList(items=[BlockItem.of(b) for b in await reports.blocks(principal.user_id)])

    @delete("/me", status_code=204, summary="Delete my account (idempotent)")
    async def delete_me(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        account_deletion: AccountDeletionDep,
    ) -> None:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        await account_deletion.delete(principal.user_id, token.strip() or None)


class ModerationController(Controller):
    path = "/v1/admin"
    tags = ["operations"]

    @get("/reports", summary="Reports, oldest first (50 a page)")
    async def reports(
        self,
        principal: PrincipalDep,
        moderation: ModerationDep,
        status: FromQuery[ReportStatus | None] = None,
        cursor: Cursor = None,
    ) -> AdminReportPage:
        require_service(principal)
        rows, last = await moderation.reports(status, after=decode_cursor(cursor))
        return AdminReportPage(
            items=[AdminReport.of(r) for r in rows], next_cursor=encode_cursor(last)
        )

    @post("/reports/{report_id:uuid}/resolve", status_code=200, summary="Act on a report")
    async def resolve(
        self,
        principal: PrincipalDep,
        moderation: ModerationDep,
        clock: ClockDep,
        report_id: FromPath[uuid.UUID],
        data: JSONBody[ResolveRequest],
    ) -> AdminReport:
        require_service(principal)
        resolved = await moderation.resolve(
            principal.user_id,
            report_id,
            action=data.action,
            note=data.note,
            now=clock.now(),
        )
        return AdminReport.of(resolved)

    @get("/audit-log", summary="Moderators' actions, newest first (200)")
    async def audit_log(
        self, principal: PrincipalDep, moderation: ModerationDep, target_id: TargetQuery = None
    ) -> AuditLog:
        require_service(principal)
        entries = await moderation.audit_log(target_id)
        return AuditLog(items=[AuditItem.of(e) for e in entries])
