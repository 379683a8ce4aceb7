"""Trust and safety (issue #17): reports, blocks, moderators' actions, account erasure.

A user reports a post, a comment or another user with a reason from a fixed list
(App Store Review Guideline 1.2). One open report per reporter and target: a second
one is a conflict until the first is resolved. A post that ``reports_to_hide``
distinct users reported (all still open) is hidden pending review, in the
transaction that records the report which crossed the line.

An operator (service-role token) resolves a report with one action, and every
action is written to the audit log in the same transaction: who, what, when, which
target, and their note. Resolving settles every open report on the same target
(one decision answers all of them).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import (
    ConcurrencyConflict,
    Forbidden,
    IllegalTransition,
    StoreUnavailable,
)

#: distinct open reporters that hide a post pending review (GENSTUDIO_REPORTS_TO_HIDE)
REPORTS_TO_HIDE = 3
MAX_DETAILS = 1000
MAX_NOTE = 1000
PAGE = 50


class TargetKind(enum.StrEnum):
    POST = "post"
    COMMENT = "comment"
    USER = "user"


class ReportReason(enum.StrEnum):
    SPAM = "spam"
    NUDITY = "nudity"
    VIOLENCE = "violence"
    HARASSMENT = "harassment"
    HATE = "hate"
    SELF_HARM = "self_harm"
    ILLEGAL = "illegal"
    INTELLECTUAL_PROPERTY = "intellectual_property"
    IMPERSONATION = "impersonation"
    OTHER = "other"


class ReportStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # an operator acted (removed, suspended, restored)
    DISMISSED = "dismissed"  # an operator found nothing wrong


class Action(enum.StrEnum):
    """What an operator does with a report."""

    REMOVE_CONTENT = "remove_content"  # the post or comment is removed
    RESTORE = "restore"  # a hidden post or comment is visible again
    SUSPEND_USER = "suspend_user"  # the target's author (or the user) is suspended
    DISMISS = "dismiss"  # nothing wrong: reports dismissed, a hidden post restored


class Report(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    reporter_id: uuid.UUID
    target_kind: TargetKind
    target_id: uuid.UUID
    #: the target's author (the reported user for a user): what a suspension acts on
    target_user_id: uuid.UUID
    reason: ReportReason
    details: str
    status: ReportStatus
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: uuid.UUID | None = None
    action: Action | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    actor_id: uuid.UUID | None  # the operator's token subject; None: the system
    action: str  # an Action's value, "hidden_by_reports" or "account_deleted"
    target_kind: TargetKind
    target_id: uuid.UUID
    report_id: uuid.UUID | None
    note: str
    created_at: datetime


class Block(msgspec.Struct, frozen=True, kw_only=True):
    blocked_id: uuid.UUID
    username: str | None
    display_name: str | None
    created_at: datetime


class Erased(msgspec.Struct, frozen=True, kw_only=True):
    """What erasing an account left to do after its commit: the files to delete (each
    an expected upload until deleted) and whether it was erased before."""

    storage_keys: tuple[str, ...]
    already: bool


def outcome(action: Action) -> ReportStatus:
    return ReportStatus.DISMISSED if action is Action.DISMISS else ReportStatus.RESOLVED


class AlreadyReported(ConcurrencyConflict):
    """The reporter has an open report on this target (409)."""

    code = "already_reported"


class ReportClosed(IllegalTransition):
    """The report was resolved or dismissed already (409)."""

    code = "report_closed"


class AuthUnavailable(StoreUnavailable):
    """The identity provider did not confirm that the sessions ended (503); retry."""

    code = "auth_unavailable"


class AccountSuspended(Forbidden):
    """An operator suspended the account after reports (``suspend_user``): it may read,
    but not publish, comment or like (403 ``account_suspended``)."""

    code = "account_suspended"

    def __init__(self) -> None:
        super().__init__("this account is suspended: it cannot publish, comment or like")
