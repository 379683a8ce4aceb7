"""Telling the user (issue #18): events, the inbox, the push outbox, preferences, tokens.

The core decides *what* to tell and *to whom* (an event kind with structured data: ids
for the app's deep links, counts, amounts); the words are the edge's (templates per
kind and language, rendered by an adapter). A notification is written in the same
transaction as what caused it, with a key that makes it once-only; the push channel is
an outbox row (``Delivery``) delivered at least once by a task, and the in-app channel
is the notification row itself (the inbox).
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.ids import uuid7


class Category(enum.StrEnum):
    GENERATION = "generation"
    TRAINING = "training"
    SOCIAL = "social"
    ACCOUNT_AND_BILLING = "account_and_billing"
    MARKETING = "marketing"


class Channel(enum.StrEnum):
    PUSH = "push"
    IN_APP = "in_app"


class EventKind(enum.StrEnum):
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"  # failed for good; its credits were returned
    JOB_DEAD_LETTERED = "job_dead_lettered"  # attempts used up; credits returned
    TRAINING_PROGRESS = "training_progress"
    TRAINING_SUCCEEDED = "training_succeeded"
    TRAINING_FAILED = "training_failed"
    CREDITS_GRANTED = "credits_granted"  # data.source: purchase | allowance | grant
    CREDITS_CLAWED_BACK = "credits_clawed_back"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_IN_GRACE = "subscription_in_grace"
    SUBSCRIPTION_EXPIRING = "subscription_expiring"
    SUBSCRIPTION_EXPIRED = "subscription_expired"
    LOW_BALANCE = "low_balance"
    POST_LIKED = "post_liked"  # social (when it lands): aggregated per post
    POST_COMMENTED = "post_commented"
    REPORT_OUTCOME = "report_outcome"
    ANNOUNCEMENT = "announcement"  # marketing


CATEGORY_OF: dict[EventKind, Category] = {
    EventKind.JOB_SUCCEEDED: Category.GENERATION,
    EventKind.JOB_FAILED: Category.GENERATION,
    EventKind.JOB_DEAD_LETTERED: Category.GENERATION,
    EventKind.TRAINING_PROGRESS: Category.TRAINING,
    EventKind.TRAINING_SUCCEEDED: Category.TRAINING,
    EventKind.TRAINING_FAILED: Category.TRAINING,
    EventKind.CREDITS_GRANTED: Category.ACCOUNT_AND_BILLING,
    EventKind.CREDITS_CLAWED_BACK: Category.ACCOUNT_AND_BILLING,
    EventKind.SUBSCRIPTION_RENEWED: Category.ACCOUNT_AND_BILLING,
    EventKind.SUBSCRIPTION_IN_GRACE: Category.ACCOUNT_AND_BILLING,
    EventKind.SUBSCRIPTION_EXPIRING: Category.ACCOUNT_AND_BILLING,
    EventKind.SUBSCRIPTION_EXPIRED: Category.ACCOUNT_AND_BILLING,
    EventKind.LOW_BALANCE: Category.ACCOUNT_AND_BILLING,
    EventKind.POST_LIKED: Category.SOCIAL,
    EventKind.POST_COMMENTED: Category.SOCIAL,
    EventKind.REPORT_OUTCOME: Category.SOCIAL,
    EventKind.ANNOUNCEMENT: Category.MARKETING,
}

#: kinds whose bursts to one target become one notification (``Event.group``)
AGGREGATED: frozenset[EventKind] = frozenset(
    {EventKind.POST_LIKED, EventKind.POST_COMMENTED, EventKind.JOB_SUCCEEDED}
)

#: what an event's data may hold: JSON scalars (ids as strings, for deep links)
Data = dict[str, str | int | bool | None]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Something a user should be told, as a use case states it.

    ``key`` makes it once-only per user (``job_succeeded:<job id>``): telling it again
    is a no-op, whatever retried. ``group`` (aggregated kinds only) names the target a
    burst is about (``post:<id>``, ``jobs``): within the aggregation window, events of
    one kind and group become one notification, counted.
    """

    user_id: uuid.UUID
    kind: EventKind
    key: str
    data: Data = msgspec.field(default_factory=dict)
    group: str | None = None

    @property
    def category(self) -> Category:
        return CATEGORY_OF[self.kind]


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the inbox (hidden from it when the user turned in-app off for its
    category: it still carries the push). ``count`` > 1: an aggregated burst, ``data``
    the latest member's (plus ``count``), ``group_until`` the end of its window."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: EventKind
    category: Category
    data: Data
    created_at: datetime
    updated_at: datetime
    in_inbox: bool = True
    count: int = 1
    group: str | None = None
    group_until: datetime | None = None
    read_at: datetime | None = None


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at ``due_at``: quiet hours, an aggregation window, a retry
    SENT = "sent"  # Expo accepted it for at least one device (tickets kept for receipts)
    SKIPPED = "skipped"  # nothing to send: push off meanwhile, no active device
    FAILED = "failed"  # refused for good (too big, bad credentials) or retries used up


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """The push outbox: one row per notification and push (``seq`` counts the pushes
    of one aggregated notification: the first at once, one summary after its window).
    ``(notification_id, seq)`` is unique, so no push is ever written twice."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: uuid.UUID
    seq: int
    status: DeliveryStatus
    due_at: datetime
    attempts: int = 0
    claimed_until: datetime | None = None  # a sender holds it until then (a lease)
    created_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None


class PushTicket(msgspec.Struct, frozen=True, kw_only=True):
    """Expo accepted a message for ``token``; its receipt is asked for later."""

    id: str  # Expo's ticket id
    token: str
    delivery_id: uuid.UUID
    created_at: datetime


# --- preferences -------------------------------------------------------------------

LANGUAGES = ("en", "de", "es")


class QuietHours(msgspec.Struct, frozen=True, kw_only=True):
    """Local wall-clock times in the user's zone; ``start > end`` spans midnight."""

    start: time
    end: time


class Preferences(msgspec.Struct, frozen=True, kw_only=True):
    """What a user allows: per category and channel (absent: the default, on for all
    but marketing), quiet hours, their IANA time zone and language."""

    user_id: uuid.UUID
    channels: dict[Category, dict[Channel, bool]] = msgspec.field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    time_zone: str = "UTC"
    language: str = "en"
    updated_at: datetime | None = None

    def allows(self, category: Category, channel: Channel) -> bool:
        chosen = self.channels.get(category, {}).get(channel)
        return (category is not Category.MARKETING) if chosen is None else chosen

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet hours around ``now`` end (UTC), or None outside them."""
        if self.quiet_hours is None or self.quiet_hours.start == self.quiet_hours.end:
            return None
        zone = ZoneInfo(self.time_zone)
        local = now.astimezone(zone)
        start, end = self.quiet_hours.start, self.quiet_hours.end
        t = local.time().replace(tzinfo=None)
        inside = (start <= t < end) if start < end else (t >= start or t < end)
        if not inside:
            return None
        day = local.date() if (start < end or t < end) else local.date() + timedelta(days=1)
        # wall-clock end in the zone (a DST gap moves it on, as ZoneInfo resolves it)
        return datetime.combine(day, end, tzinfo=zone).astimezone(now.tzinfo)


def default_preferences(user_id: uuid.UUID) -> Preferences:
    return Preferences(user_id=user_id)


#: files a time zone directory may hold that name no IANA zone (the server's own zone)
_NOT_ZONES = frozenset({"localtime", "posixrules"})


@cache
def time_zones() -> frozenset[str]:
    """The IANA zone names this system's time zone database holds: what a user may
    choose (and what the OpenAPI document describes). ``ZoneInfo`` alone also opens
    files that are no zone's name (``localtime``: the server's zone)."""
    return frozenset(available_timezones()) - _NOT_ZONES


def check_time_zone(name: str) -> str:
    if name not in time_zones():
        raise InvalidInput(f"{name!r} is not an IANA time zone", field="timeZone")
    return name


def check_language(code: str) -> str:
    if code not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    return code


# --- push tokens --------------------------------------------------------------------

_EXPO_TOKEN = re.compile(r"^(ExponentPushToken|ExpoPushToken)\[[A-Za-z0-9_\-]{10,200}\]$")


class Platform(enum.StrEnum):
    IOS = "ios"
    ANDROID = "android"


class PushToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    user_id: uuid.UUID  # the last user who registered it
    platform: Platform
    device_id: str
    app_version: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


def check_push_token(token: str) -> str:
    if not _EXPO_TOKEN.match(token):
        raise InvalidInput("not an Expo push token (ExponentPushToken[...])", field="token")
    return token


# --- policy ----------------------------------------------------------------------------


class NotificationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    aggregation_window: timedelta = timedelta(minutes=10)
    low_balance_below: int = 5  # tell the user once a day when a spend leaves less
    max_attempts: int = 8  # push retries before a delivery fails for good
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=30)
    claim_for: timedelta = timedelta(seconds=60)  # a sender's lease on a delivery
    receipts_after: timedelta = timedelta(minutes=15)  # Expo: receipts within ~15 min

    def retry_at(self, attempts: int, now: datetime) -> datetime:
        delay: timedelta = min(self.retry_cap, self.retry_base * (2 ** max(0, attempts - 1)))
        return now + delay


def new_notification(
    event: Event, *, in_inbox: bool, now: datetime, window: timedelta
) -> Notification:
    grouped = event.group is not None and event.kind in AGGREGATED
    return Notification(
        id=uuid7(),
        user_id=event.user_id,
        kind=event.kind,
        category=event.category,
        data=dict(event.data),
        created_at=now,
        updated_at=now,
        in_inbox=in_inbox,
        group=event.group if grouped else None,
        group_until=now + window if grouped else None,
    )


def joined(notification: Notification, event: Event, now: datetime) -> Notification:
    """``event`` joins the open burst ``notification``: counted, its data the latest."""
    return msgspec.structs.replace(
        notification,
        count=notification.count + 1,
        data={**event.data},
        updated_at=now,
        read_at=None,  # news again
    )
