"""Request and response bodies of the trust-and-safety routes (camelCase JSON)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.safety import Action, AuditEntry, Block, Report, ReportReason, TargetKind


class ReportRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    target_type: TargetKind
    target_id: uuid.UUID
    reason: ReportReason
    details: str | None = None


class ReportResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    target_type: str
    target_id: uuid.UUID
    reason: str
    details: str
    status: str
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, r: Report) -> ReportResponse:
        return cls(
            id=r.id,
            target_type=r.target_kind.value,
            target_id=r.target_id,
            reason=r.reason.value,
            details=r.details,
            status=r.status.value,
            created_at=r.created_at,
            resolved_at=r.resolved_at,
        )


class ReportList(msgspec.Struct, rename="camel", kw_only=True):
    items: list[ReportResponse]


class AdminReport(msgspec.Struct, rename="camel", kw_only=True):
    """A report as an operator sees it: who reported whom, and what was decided."""

    id: uuid.UUID
    reporter_id: uuid.UUID
    target_type: str
    target_id: uuid.UUID
    target_user_id: uuid.UUID
    reason: str
    details: str
    status: str
    action: str | None
    resolved_by: uuid.UUID | None
    resolved_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, r: Report) -> AdminReport:
        return cls(
            id=r.id,
            reporter_id=r.reporter_id,
            target_type=r.target_kind.value,
            target_id=r.target_id,
            target_user_id=r.target_user_id,
            reason=r.reason.value,
            details=r.details,
            status=r.status.value,
            action=None if r.action is None else r.action.value,
            resolved_by=r.resolved_by,
            resolved_at=r.resolved_at,
            created_at=r.created_at,
        )


class AdminReportPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[AdminReport]
    next_cursor: str | None


class ResolveRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    action: Action
    note: str | None = None


class AuditItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    actor_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: uuid.UUID
    report_id: uuid.UUID | None
    note: str
    created_at: datetime

    @classmethod
    def of(cls, e: AuditEntry) -> AuditItem:
        return cls(
            id=e.id,
            actor_id=e.actor_id,
            action=e.action,
            target_type=e.target_kind.value,
            target_id=e.target_id,
            report_id=e.report_id,
            note=e.note,
            created_at=e.created_at,
        )


class AuditLog(msgspec.Struct, rename="camel", kw_only=True):
    items: list[AuditItem]


class BlockItem(msgspec.Struct, rename="camel", kw_only=True):
    user_id: uuid.UUID
    username: str | None
    display_name: str | None
    blocked_at: datetime

    @classmethod
    def of(cls, b: Block) -> BlockItem:
        return cls(
            user_id=b.blocked_id,
            username=b.username,
            display_name=b.display_name,
            blocked_at=b.created_at,
        )


class BlockList(msgspec.Struct, rename="camel", kw_only=True):
    items: list[BlockItem]


_CURSOR = msgspec.json.Decoder(tuple[datetime, uuid.UUID])


def encode_cursor(key: tuple[datetime, uuid.UUID] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    if raw is None:
        return None
    try:
        at, row_id = _CURSOR.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise InvalidInput("cursor is not one this API gave out", field="cursor") from None
    if at.tzinfo is None:
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return at, row_id
