"""The committed in-memory state and what repositories share."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from genstudio.core.model.credits import Hold, LedgerEntry, Lot
from genstudio.core.model.events import JobEvent
from genstudio.core.model.idempotency import IdempotencyRecord
from genstudio.core.model.jobs import Job
from genstudio.core.model.media import MediaAsset
from genstudio.core.model.moderation import Strike
from genstudio.core.model.moderation_rules import ModerationRule
from genstudio.core.model.notifications import (
    Delivery,
    Notification,
    Preferences,
    PushTicket,
    PushToken,
)
from genstudio.core.model.profiles import Profile
from genstudio.core.model.purchases.early_revocations import EarlyRevocation
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
)
from genstudio.core.model.safety import AuditEntry, Report
from genstudio.core.model.social import Comment, Post, SocialProfile
from genstudio.core.model.training.models import TrainedModel
from genstudio.core.model.training.photos import Photo, PhotoSet


@dataclass
class _Data:
    profiles: dict[uuid.UUID, Profile] = field(default_factory=dict)
    entries: dict[uuid.UUID, list[LedgerEntry]] = field(default_factory=dict)
    lots: dict[uuid.UUID, Lot] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    jobs: dict[uuid.UUID, Job] = field(default_factory=dict)
    media: dict[uuid.UUID, MediaAsset] = field(default_factory=dict)
    idempotency: dict[tuple[uuid.UUID, str], IdempotencyRecord] = field(default_factory=dict)
    store_transactions: dict[tuple[str, str], StoreTransaction] = field(default_factory=dict)
    entitlements: dict[tuple[str, str], Entitlement] = field(default_factory=dict)
    allowance_grants: dict[tuple[str, str, datetime], AllowanceGrant] = field(default_factory=dict)
    store_notifications: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    early_revocations: dict[tuple[str, str], EarlyRevocation] = field(default_factory=dict)
    job_events: dict[uuid.UUID, JobEvent] = field(default_factory=dict)
    enqueued_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    upload_intents: dict[str, tuple[uuid.UUID, datetime]] = field(default_factory=dict)
    # --- training (issue #16) ---
    photo_sets: dict[uuid.UUID, PhotoSet] = field(default_factory=dict)
    photos: dict[uuid.UUID, Photo] = field(default_factory=dict)
    trained_models: dict[uuid.UUID, TrainedModel] = field(default_factory=dict)
    # --- notifications (issue #18) ---
    notifications: dict[uuid.UUID, Notification] = field(default_factory=dict)
    notification_keys: dict[tuple[uuid.UUID, str], uuid.UUID] = field(default_factory=dict)
    deliveries: dict[uuid.UUID, Delivery] = field(default_factory=dict)
    push_tickets: dict[str, PushTicket] = field(default_factory=dict)
    notification_preferences: dict[uuid.UUID, Preferences] = field(default_factory=dict)
    push_tokens: dict[str, PushToken] = field(default_factory=dict)
    # --- social (issue #17) ---
    social_profiles: dict[uuid.UUID, SocialProfile] = field(default_factory=dict)
    posts: dict[uuid.UUID, Post] = field(default_factory=dict)
    likes: dict[tuple[uuid.UUID, uuid.UUID], datetime] = field(default_factory=dict)
    comments: dict[uuid.UUID, Comment] = field(default_factory=dict)
    blocks: dict[tuple[uuid.UUID, uuid.UUID], datetime] = field(default_factory=dict)
    # --- moderation (issue #19) ---
    moderation_rules: dict[uuid.UUID, ModerationRule] = field(default_factory=dict)
    strikes: dict[uuid.UUID, Strike] = field(default_factory=dict)
    # --- trust and safety (issue #17) ---
    reports: dict[uuid.UUID, Report] = field(default_factory=dict)
    audit_log: dict[uuid.UUID, AuditEntry] = field(default_factory=dict)
    suspensions: dict[uuid.UUID, datetime] = field(default_factory=dict)
    erasures: dict[uuid.UUID, datetime] = field(default_factory=dict)


class InMemoryStore:
    """The committed state, shared by every unit of work made over it."""

    def __init__(self) -> None:
        self.data = _Data()
        self._locks: dict[object, asyncio.Lock] = {}

    def lock_for(self, key: object) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


class Work(Protocol):
    """What a repository needs of its unit of work: the rows it sees, and row locks."""

    store: InMemoryStore
    held: dict[object, asyncio.Lock]

    def view(self) -> _Data: ...

    async def acquire(self, key: object) -> None: ...


class _Repo:
    def __init__(self, uow: Work) -> None:
        self._uow = uow

    @property
    def _d(self) -> _Data:
        return self._uow.view()
