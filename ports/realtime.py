"""Realtime: events for a user's open app (``WS /v1/realtime``), from any process.

The core calls ``publish`` from an after-commit effect (``uow.after_commit``): an event
describes something already committed. Publishing is best effort and fast; what must
reach the user in any case is an outbox row (a notification), not this.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Protocol

#: the event types the core publishes (the realtime edge may add its own, e.g. a heartbeat)
NOTIFICATION_CREATED = "notification.created"
JOB_UPDATED = "job.updated"
CREDITS_CHANGED = "credits.changed"


class RealtimePublisher(Protocol):
    async def publish(
        self, user_id: uuid.UUID, event_type: str, payload: Mapping[str, object]
    ) -> None:
        """Send one event to every open connection of ``user_id`` (in any process).

        ``payload`` is JSON-ready (str, int, float, bool, None, lists and mappings of
        them; ids as strings). Only that user's connections receive it. Delivery is at
        most once and may be dropped (no connection, a slow client, the fan-out's
        backend down): an implementation never raises for that, it logs; it raises only
        for a programming error (a payload that is not JSON-ready)."""
        ...
