"""Product analytics events (issue #20): what happened, to whose account, never what
they wrote.

An event names a user by id only (PostHog's ``distinct_id``) and carries a few
properties from a closed list (``PROPERTIES``): job kinds, model and provider names,
credit amounts, durations, store and product ids, reasons. Prompts, captions,
comments, usernames, emails, file names and error messages are never properties: the
builders below take the domain objects and copy only the listed facts, and
``AnalyticsEvent`` refuses any other property name or a value that is not a short
scalar, so a property cannot smuggle free text in by accident.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime

import msgspec

from genstudio.core.model.ids import uuid7
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.purchases.entitlements import Entitlement
from genstudio.core.model.purchases.store_events import EntitlementStatus
from genstudio.core.model.social import Post

#: the longest text value a property may hold (ids and enum values are shorter)
MAX_TEXT = 80

Value = str | int | float | bool | None


class EventName(enum.StrEnum):
    GENERATION_SUBMITTED = "generation_submitted"
    GENERATION_SUCCEEDED = "generation_succeeded"
    GENERATION_FAILED = "generation_failed"
    TRAINING_STARTED = "training_started"
    TRAINING_SUCCEEDED = "training_succeeded"
    TRAINING_FAILED = "training_failed"
    CREDITS_PURCHASED = "credits_purchased"
    CREDITS_CLAWED_BACK = "credits_clawed_back"
    SUBSCRIPTION_STARTED = "subscription_started"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    SUBSCRIPTION_EXPIRED = "subscription_expired"
    POST_PUBLISHED = "post_published"
    POST_LIKED = "post_liked"
    COMMENT_ADDED = "comment_added"


#: every property an event may carry; nothing else is sent
PROPERTIES = frozenset(
    {
        "job_id",
        "kind",
        "model",
        "provider",
        "credits",
        "attempts",
        "queue_wait_s",
        "run_time_s",
        "reason",
        "dead_lettered",
        "store",
        "product",
        "amount",
        "status",
        "post_id",
        "media_kind",
        "visibility",
        "own_post",
    }
)


class AnalyticsEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event for ``user_id``. ``id`` lets the analytics service drop a copy sent
    twice (a batch retried after a timeout); ``at`` is when it happened (the commit's
    clock), not when it is sent. Raises ValueError for a property not in
    ``PROPERTIES`` or a value that is not a scalar (text at most ``MAX_TEXT``)."""

    name: EventName
    user_id: uuid.UUID
    at: datetime
    properties: Mapping[str, Value] = msgspec.field(default_factory=dict)
    id: uuid.UUID = msgspec.field(default_factory=uuid7)

    def __post_init__(self) -> None:
        for key, value in self.properties.items():
            if key not in PROPERTIES:
                raise ValueError(f"{key!r} is not an analytics property")
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise ValueError(f"{key!r} is longer than {MAX_TEXT} characters")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise ValueError(f"{key!r} is not a scalar")


# --- generation and training ------------------------------------------------------------


def _job_facts(job: Job) -> dict[str, Value]:
    return {"job_id": str(job.id), "kind": job.kind.value, "model": job.model_id}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def job_submitted(job: Job) -> AnalyticsEvent:
    """A job accepted and its credits held (a training job is ``training_started``)."""
    name = (
        EventName.TRAINING_STARTED
        if job.kind is ModelKind.TRAINING
        else EventName.GENERATION_SUBMITTED
    )
    facts = _job_facts(job) | {"credits": job.cost}
    return AnalyticsEvent(name=name, user_id=job.user_id, at=job.created_at, properties=facts)


def job_ended(job: Job) -> AnalyticsEvent | None:
    """A job that succeeded or failed for good (None for any other status): where it
    ran, what it cost (0 when the credits came back), how long it waited in the queue
    (from submission to the provider's acceptance of its last attempt) and ran (from
    that acceptance to its end; None where no provider accepted it)."""
    training = job.kind is ModelKind.TRAINING
    if job.status is JobStatus.SUCCEEDED:
        name = EventName.TRAINING_SUCCEEDED if training else EventName.GENERATION_SUCCEEDED
        credits = job.cost
    elif job.status is JobStatus.FAILED:
        name = EventName.TRAINING_FAILED if training else EventName.GENERATION_FAILED
        credits = 0
    else:
        return None
    started = job.submitted_at
    facts = _job_facts(job) | {
        "provider": job.provider,
        "credits": credits,
        "attempts": job.attempts,
        "queue_wait_s": _seconds(job.created_at, started or job.updated_at),
        "run_time_s": _seconds(started, job.updated_at),
    }
    if job.error is not None:
        facts["reason"] = job.error.reason.value
        facts["dead_lettered"] = job.dead_lettered_at is not None
    return AnalyticsEvent(name=name, user_id=job.user_id, at=job.updated_at, properties=facts)


# --- money ---------------------------------------------------------------------------------


def credits_purchased(
    user_id: uuid.UUID, *, store: str, product: str, amount: int, at: datetime
) -> AnalyticsEvent:
    return AnalyticsEvent(
        name=EventName.CREDITS_PURCHASED,
        user_id=user_id,
        at=at,
        properties={"store": store, "product": product, "amount": amount},
    )


def credits_clawed_back(
    user_id: uuid.UUID, *, store: str, product: str | None, amount: int, reason: str, at: datetime
) -> AnalyticsEvent:
    """Credits taken back after a refund or a revocation (``reason``)."""
    return AnalyticsEvent(
        name=EventName.CREDITS_CLAWED_BACK,
        user_id=user_id,
        at=at,
        properties={"store": store, "product": product, "amount": amount, "reason": reason},
    )


#: statuses that end a subscription before its period would: cancelled, with a reason
_ENDED_EARLY = frozenset(
    {EntitlementStatus.REFUNDED, EntitlementStatus.REVOKED, EntitlementStatus.REPLACED}
)


def subscription_changed(
    before: Entitlement | None, after: Entitlement, at: datetime
) -> AnalyticsEvent | None:
    """What a subscription's change was, if one of those counted: started (a new
    entitled subscription), renewed (a new payment, entitled), cancelled (auto-renew
    turned off, or ended early by a refund, a revocation or an upgrade), expired.
    None for anything else (a redelivered snapshot, grace periods, holds)."""
    facts: dict[str, Value] = {
        "store": str(after.store),
        "product": after.product_id,
        "status": after.status.value,
    }
    if before is None:
        if not after.entitled:
            return None
        name = EventName.SUBSCRIPTION_STARTED
    elif after.latest_transaction_id != before.latest_transaction_id and after.entitled:
        name = EventName.SUBSCRIPTION_RENEWED
    elif after.status is not before.status and after.status in _ENDED_EARLY:
        name = EventName.SUBSCRIPTION_CANCELLED
        facts["reason"] = after.status.value
    elif before.auto_renew and not after.auto_renew and after.entitled:
        name = EventName.SUBSCRIPTION_CANCELLED
        facts["reason"] = "auto_renew_off"
    elif after.status is not before.status and after.status is EntitlementStatus.EXPIRED:
        name = EventName.SUBSCRIPTION_EXPIRED
    else:
        return None
    return AnalyticsEvent(name=name, user_id=after.user_id, at=at, properties=facts)


# --- social ----------------------------------------------------------------------------------


def post_published(post: Post) -> AnalyticsEvent:
    return AnalyticsEvent(
        name=EventName.POST_PUBLISHED,
        user_id=post.user_id,
        at=post.created_at,
        properties={
            "post_id": str(post.id),
            "media_kind": post.media_kind.value,
            "visibility": post.visibility.value,
        },
    )


def post_liked(user_id: uuid.UUID, post: Post, at: datetime) -> AnalyticsEvent:
    """``user_id`` liked ``post`` (the liker's event)."""
    return AnalyticsEvent(
        name=EventName.POST_LIKED,
        user_id=user_id,
        at=at,
        properties={
            "post_id": str(post.id),
            "media_kind": post.media_kind.value,
            "own_post": post.user_id == user_id,
        },
    )


def comment_added(user_id: uuid.UUID, post: Post, at: datetime) -> AnalyticsEvent:
    """``user_id`` commented on ``post`` (the commenter's event; never the text)."""
    return AnalyticsEvent(
        name=EventName.COMMENT_ADDED,
        user_id=user_id,
        at=at,
        properties={
            "post_id": str(post.id),
            "media_kind": post.media_kind.value,
            "own_post": post.user_id == user_id,
        },
    )
