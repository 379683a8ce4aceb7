"""Trust and safety's persistence (issue #17): reports, the moderators' audit log,
suspensions, the list of my blocks, and erasing an account.

Blocks themselves are written through ``SocialRepository.block``/``unblock`` (the
social side's queries read them); this port only lists them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from genstudio.core.model.jobs import Job
from genstudio.core.model.safety import (
    Action,
    AuditEntry,
    Block,
    Report,
    ReportStatus,
    TargetKind,
)


class SafetyRepository(Protocol):
    # --- reports -------------------------------------------------------------------

    async def add_report(self, report: Report) -> None:
        """Raises core.errors.DuplicateEntry when the reporter has an open report on
        the same target, also when two arrive at once (one wins; the other gets the
        error, at the latest from ``commit``)."""
        ...

    async def get_report(self, report_id: uuid.UUID, *, lock: bool = False) -> Report | None:
        """``lock``: hold the report's row until the unit ends (one resolution at once)."""
        ...

    async def open_reporters(self, kind: TargetKind, target_id: uuid.UUID) -> int:
        """Distinct reporters with an open report on the target, this transaction's
        own report included. Call it after locking the target (the post's row), so
        that two reports at once count each other."""
        ...

    async def lock_post(self, post_id: uuid.UUID) -> None:
        """Hold the post's row until the unit ends (what concurrent reports of one
        post serialise on). A missing post is not an error."""
        ...

    async def list_reports(
        self, status: ReportStatus | None, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Report]:
        """Oldest first by (created_at, id): the queue moderators work through."""
        ...

    async def my_reports(self, reporter_id: uuid.UUID, *, limit: int) -> list[Report]:
        """The reporter's reports, newest first."""
        ...

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
        """Every open report on the target gets ``status``; returns how many."""
        ...

    # --- moderation ------------------------------------------------------------------

    async def set_comment_state(self, comment_id: uuid.UUID, state: str) -> bool:
        """A comment's moderation state (``visible``, ``hidden``, ``removed``); False
        when it does not exist."""
        ...

    async def suspend(self, user_id: uuid.UUID, at: datetime) -> None:
        """Marks the account suspended and hides its visible posts. Idempotent."""
        ...

    async def suspended(self, user_id: uuid.UUID) -> bool: ...

    async def audit(self, entry: AuditEntry) -> None:
        """Append to the audit log (never updated, never deleted)."""
        ...

    async def audit_log(self, *, target_id: uuid.UUID | None, limit: int) -> list[AuditEntry]:
        """Newest first; ``target_id`` narrows it to one target."""
        ...

    # --- blocks ----------------------------------------------------------------------

    async def blocks(self, blocker: uuid.UUID, *, limit: int) -> list[Block]:
        """Whom ``blocker`` blocked, latest first, with their public names."""
        ...

    # --- account erasure -------------------------------------------------------------

    async def unfinished_jobs(self, user_id: uuid.UUID) -> list[Job]:
        """The user's jobs that have not ended (to cancel before erasing)."""
        ...

    async def withdraw_posts(self, user_id: uuid.UUID, at: datetime) -> None:
        """Mark the user's posts ``removed``: from its commit on, nobody else reaches
        them (no new like or comment), ahead of erasing them."""
        ...

    async def lock_posts(self, user_id: uuid.UUID) -> None:
        """Lock the rows of the user's posts' likes and comments, then the posts' rows
        (each in one order), until the unit ends. Erasing takes them before the
        account's row, in the order the social writes take them: an unlike or a
        comment's deletion locks its row, then its post (the counter); a like or a
        comment locks its post, then references the author's profile (the author's
        notification). Any other order deadlocks with one of them."""
        ...

    async def erased_at(self, user_id: uuid.UUID) -> datetime | None:
        """When the account was erased; None if it was not (or has no profile)."""
        ...

    async def erase_account(self, user_id: uuid.UUID, at: datetime) -> list[str]:
        """Delete everything of the user but what the books need, in this unit:
        media, posts (with their likes and comments), the user's likes (the posts'
        counts follow), comments, blocks both ways, trained models, photo sets and
        photos, push tokens, notifications and their outbox, preferences, jobs and
        their events, idempotency records; the profile's personal columns (email,
        names, bio, avatar, language) are cleared and ``erased_at`` set. Ledger
        entries, lots, holds, store transactions, entitlements and allowance grants
        stay, under the same (now anonymous) user id. Lock the account row first.

        Returns the storage keys of the files that belonged to what was deleted
        (media, posters, avatar, trained weights, training photos), for the caller to
        record as expected uploads in this unit and delete after the commit."""
        ...
