"""Trust and safety in Postgres (migration 0210): reports, the audit log,
suspensions, and erasing an account.

One open report per reporter and target is the partial unique index
``reports_one_open``: a second insert is a unique violation (DuplicateEntry), also
when both arrive at once. Erasing an account is a fixed list of statements in one
transaction after the account's row lock; the likes and comments it deletes move
their posts' counters through 0200's triggers.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from psycopg import errors
from sqlalchemy import text

from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.jobs import _job
from genstudio.adapters.supabase.repositories.rows import Row, _Repository, _utc, _utc_or_none
from genstudio.core.model.errors import ConcurrencyConflict
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.safety import (
    Action,
    AuditEntry,
    Block,
    Report,
    ReportReason,
    ReportStatus,
    TargetKind,
)

_LAST_ID = uuid.UUID(int=0)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_REPORT_COLUMNS = (
    "id, reporter_id, target_kind, target_id, target_user_id, reason, details, status,"
    " action, resolved_by, resolved_at, created_at"
)

_ADD_REPORT = Compiled(
    text(
        f"INSERT INTO reports ({_REPORT_COLUMNS}) VALUES (:id, :reporter_id, :target_kind,"
        " :target_id, :target_user_id, :reason, :details, :status, :action, :resolved_by,"
        " :resolved_at, :created_at)"
    )
)
_GET_REPORT = Compiled(text(f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = :id"))
_LOCK_REPORT = Compiled(text(f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = :id FOR UPDATE"))
_OPEN_REPORTERS = Compiled(
    text(
        "SELECT count(DISTINCT reporter_id) AS n FROM reports WHERE target_kind = :kind"
        " AND target_id = :target AND status = 'open'"
    )
)
_LOCK_POST = Compiled(text("SELECT 1 FROM posts WHERE id = :id FOR UPDATE"))
_LIST_REPORTS = Compiled(
    text(
        f"SELECT {_REPORT_COLUMNS} FROM reports"
        " WHERE (CAST(:status AS text) IS NULL OR status = :status)"
        " AND (created_at, id) > (:at, :id) ORDER BY created_at, id LIMIT :limit"
    )
)
_MY_REPORTS = Compiled(
    text(
        f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reporter_id = :reporter"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
)
_SETTLE = Compiled(
    text(
        "UPDATE reports SET status = :status, action = :action, resolved_by = :by,"
        " resolved_at = :at WHERE target_kind = :kind AND target_id = :target"
        " AND status = 'open' RETURNING id"
    )
)
_COMMENT_STATE = Compiled(text("UPDATE comments SET state = :state WHERE id = :id RETURNING id"))
_SUSPEND = Compiled(
    text("UPDATE profiles SET suspended_at = coalesce(suspended_at, :at) WHERE id = :user")
)
_HIDE_POSTS = Compiled(
    text(
        "UPDATE posts SET state = 'hidden', updated_at = :at"
        " WHERE user_id = :user AND state = 'visible'"
    )
)
_SUSPENDED = Compiled(text("SELECT suspended_at FROM profiles WHERE id = :user"))
_AUDIT = Compiled(
    text(
        "INSERT INTO moderation_audit_log"
        " (id, actor_id, action, target_kind, target_id, report_id, note, created_at)"
        " VALUES (:id, :actor_id, :action, :target_kind, :target_id, :report_id, :note,"
        " :created_at)"
    )
)
_AUDIT_COLUMNS = "id, actor_id, action, target_kind, target_id, report_id, note, created_at"
_AUDIT_LOG = Compiled(
    text(
        f"SELECT {_AUDIT_COLUMNS} FROM moderation_audit_log"
        " WHERE (CAST(:target AS uuid) IS NULL OR target_id = :target)"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
)
_BLOCKS = Compiled(
    text(
        "SELECT b.blocked_id, b.created_at, p.username, p.display_name FROM blocks b"
        " JOIN profiles p ON p.id = b.blocked_id WHERE b.blocker_id = :user"
        " ORDER BY b.created_at DESC, b.blocked_id DESC LIMIT :limit"
    )
)
_UNFINISHED = Compiled(
    text("SELECT * FROM jobs WHERE user_id = :user AND NOT (status = ANY(:terminal))")
)
#: the likes' and comments' rows of the user's posts, then the posts: an unlike or a
#: comment's deletion locks its row and then (the counter's trigger) its post
_LOCK_POSTS = [
    Compiled(
        text(
            f"SELECT 1 FROM {table} WHERE post_id IN (SELECT id FROM posts WHERE user_id = :user)"
            f" ORDER BY {order} FOR UPDATE"
        )
    )
    for table, order in (("likes", "post_id, user_id"), ("comments", "id"))
] + [Compiled(text("SELECT id FROM posts WHERE user_id = :user ORDER BY id FOR UPDATE"))]
_WITHDRAW = Compiled(
    text("UPDATE posts SET state = 'removed', updated_at = :at WHERE user_id = :user")
)
_ERASED_AT = Compiled(text("SELECT erased_at FROM profiles WHERE id = :user"))

#: erasing an account, in an order the foreign keys accept; each returns the storage
#: keys of the files that belonged to what it deleted (none for most)
_ERASE = [
    Compiled(text(sql))
    for sql in (
        "SELECT avatar_key AS k, NULL AS k2 FROM profiles WHERE id = :user",
        "DELETE FROM trained_models WHERE user_id = :user RETURNING weights_key AS k,"
        " thumbnail_key AS k2",
        "DELETE FROM training_photos WHERE user_id = :user RETURNING storage_key AS k, NULL AS k2",
        "DELETE FROM photo_sets WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        # the posts with their likes and comments (cascades), then the user's own
        # likes and comments on others' posts (the triggers move those posts' counts)
        "DELETE FROM posts WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM likes WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM comments WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM blocks WHERE blocker_id = :user OR blocked_id = :user"
        " RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM images WHERE user_id = :user RETURNING storage_key AS k, NULL AS k2",
        "DELETE FROM videos WHERE user_id = :user RETURNING storage_key AS k, thumbnail_key AS k2",
        "DELETE FROM job_events WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM jobs WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM idempotency_records WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        # deliveries and tickets go with their notifications (cascades)
        "DELETE FROM notification_deliveries WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM notifications WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM notification_keys WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM notification_preferences WHERE user_id = :user"
        " RETURNING NULL AS k, NULL AS k2",
        "DELETE FROM push_tokens WHERE user_id = :user RETURNING NULL AS k, NULL AS k2",
    )
]
#: what stays names nobody: the balance, the tier and the dates
_ANONYMISE = Compiled(
    text(
        "UPDATE profiles SET email = NULL, username = NULL, display_name = NULL,"
        " avatar_url = NULL, avatar_key = NULL, bio = NULL, language = NULL,"
        " content_filters = '{}', username_changed_at = NULL,"
        " erased_at = coalesce(erased_at, :at) WHERE id = :user"
    )
)
_TERMINAL = [s.value for s in JobStatus if s.terminal]
#: erasing waits this long for a row lock at most, then gives way (ConcurrencyConflict;
#: the use case retries): the likes, comments and posts it deletes are also locked by
#: unlikes (the like's row, then its post) and likes (the post, then the author's
#: profile), and no one order of its own avoids both
_LOCK_TIMEOUT = Compiled(text("SET LOCAL lock_timeout = '250ms'"))


@contextlib.asynccontextmanager
async def _waits_bounded() -> AsyncIterator[None]:
    """A lock wait that ran out (or a deadlock Postgres broke on this side) is a
    ConcurrencyConflict: the unit can only roll back, and a retry may pass."""
    try:
        yield
    except (errors.LockNotAvailable, errors.DeadlockDetected) as exc:
        raise ConcurrencyConflict("erasing waited too long for a lock; retry") from exc


def _report(row: Row) -> Report:
    return Report(
        id=row["id"],
        reporter_id=row["reporter_id"],
        target_kind=TargetKind(row["target_kind"]),
        target_id=row["target_id"],
        target_user_id=row["target_user_id"],
        reason=ReportReason(row["reason"]),
        details=row["details"],
        status=ReportStatus(row["status"]),
        action=None if row["action"] is None else Action(row["action"]),
        resolved_by=row["resolved_by"],
        resolved_at=_utc_or_none(row["resolved_at"]),
        created_at=_utc(row["created_at"]),
    )


def _audit(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        actor_id=row["actor_id"],
        action=row["action"],
        target_kind=TargetKind(row["target_kind"]),
        target_id=row["target_id"],
        report_id=row["report_id"],
        note=row["note"],
        created_at=_utc(row["created_at"]),
    )


class SqlSafety(_Repository):
    # --- reports -------------------------------------------------------------------

    async def add_report(self, report: Report) -> None:
        await self._sql.run(
            _ADD_REPORT,
            {
                "id": report.id,
                "reporter_id": report.reporter_id,
                "target_kind": report.target_kind.value,
                "target_id": report.target_id,
                "target_user_id": report.target_user_id,
                "reason": report.reason.value,
                "details": report.details,
                "status": report.status.value,
                "action": None if report.action is None else report.action.value,
                "resolved_by": report.resolved_by,
                "resolved_at": report.resolved_at,
                "created_at": report.created_at,
            },
        )

    async def get_report(self, report_id: uuid.UUID, *, lock: bool = False) -> Report | None:
        row = await self._sql.one(_LOCK_REPORT if lock else _GET_REPORT, {"id": report_id})
        return None if row is None else _report(row)

    async def open_reporters(self, kind: TargetKind, target_id: uuid.UUID) -> int:
        row = await self._sql.one(_OPEN_REPORTERS, {"kind": kind.value, "target": target_id})
        return 0 if row is None else int(row["n"])

    async def lock_post(self, post_id: uuid.UUID) -> None:
        await self._sql.all(_LOCK_POST, {"id": post_id})

    async def list_reports(
        self, status: ReportStatus | None, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Report]:
        at, last = after or (_EARLIEST, _LAST_ID)
        values = {
            "status": None if status is None else status.value,
            "at": at,
            "id": last,
            "limit": limit,
        }
        return [_report(r) for r in await self._sql.all(_LIST_REPORTS, values)]

    async def my_reports(self, reporter_id: uuid.UUID, *, limit: int) -> list[Report]:
        rows = await self._sql.all(_MY_REPORTS, {"reporter": reporter_id, "limit": limit})
        return [_report(r) for r in rows]

    async def settle_reports(
        self,
        kind: TargetKind,
        target_id: uuid.UUID,
        *,
        status: ReportStatus,
        action: Action,
        by: uuid.UUID,
        at: datetime,
    ) -> int:
        values = {
            "status": status.value,
            "action": action.value,
            "by": by,
            "at": at,
            "kind": kind.value,
            "target": target_id,
        }
        return len(await self._sql.all(_SETTLE, values))

    # --- moderation ------------------------------------------------------------------

    async def set_comment_state(self, comment_id: uuid.UUID, state: str) -> bool:
        return await self._sql.one(_COMMENT_STATE, {"id": comment_id, "state": state}) is not None

    async def suspend(self, user_id: uuid.UUID, at: datetime) -> None:
        await self._sql.run(_SUSPEND, {"user": user_id, "at": at})
        await self._sql.run(_HIDE_POSTS, {"user": user_id, "at": at})

    async def suspended(self, user_id: uuid.UUID) -> bool:
        row = await self._sql.one(_SUSPENDED, {"user": user_id})
        return row is not None and row["suspended_at"] is not None

    async def audit(self, entry: AuditEntry) -> None:
        await self._sql.run(
            _AUDIT,
            {
                "id": entry.id,
                "actor_id": entry.actor_id,
                "action": entry.action,
                "target_kind": entry.target_kind.value,
                "target_id": entry.target_id,
                "report_id": entry.report_id,
                "note": entry.note,
                "created_at": entry.created_at,
            },
        )

    async def audit_log(self, *, target_id: uuid.UUID | None, limit: int) -> list[AuditEntry]:
        rows = await self._sql.all(_AUDIT_LOG, {"target": target_id, "limit": limit})
        return [_audit(r) for r in rows]

    # --- blocks ----------------------------------------------------------------------

    async def blocks(self, blocker: uuid.UUID, *, limit: int) -> list[Block]:
        rows = await self._sql.all(_BLOCKS, {"user": blocker, "limit": limit})
        return [
            Block(
                blocked_id=r["blocked_id"],
                username=r["username"],
                display_name=r["display_name"],
                created_at=_utc(r["created_at"]),
            )
            for r in rows
        ]

    # --- account erasure -------------------------------------------------------------

    async def unfinished_jobs(self, user_id: uuid.UUID) -> list[Job]:
        rows = await self._sql.all(_UNFINISHED, {"user": user_id, "terminal": _TERMINAL})
        return [_job(r) for r in rows]

    async def withdraw_posts(self, user_id: uuid.UUID, at: datetime) -> None:
        await self._sql.all(_WITHDRAW, {"user": user_id, "at": at})

    async def lock_posts(self, user_id: uuid.UUID) -> None:
        async with _waits_bounded():
            await self._sql.all(_LOCK_TIMEOUT, {})
            for statement in _LOCK_POSTS:
                await self._sql.all(statement, {"user": user_id})

    async def erased_at(self, user_id: uuid.UUID) -> datetime | None:
        row = await self._sql.one(_ERASED_AT, {"user": user_id})
        return None if row is None else _utc_or_none(row["erased_at"])

    async def erase_account(self, user_id: uuid.UUID, at: datetime) -> list[str]:
        keys: list[str] = []
        async with _waits_bounded():
            for statement in _ERASE:
                for row in await self._sql.all(statement, {"user": user_id}):
                    keys += [k for k in (row["k"], row["k2"]) if k]
            await self._sql.all(_ANONYMISE, {"user": user_id, "at": at})
        return keys
