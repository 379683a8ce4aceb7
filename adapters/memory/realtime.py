"""Realtime in memory: records every published event, for tests and as a reference."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import msgspec


class PublishedEvent(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    event_type: str
    payload: dict[str, object]


class RecordingRealtimePublisher:
    """Keeps what was published, in order; the payload is checked to be JSON-ready
    (as the port asks) by encoding it."""

    def __init__(self) -> None:
        self.events: list[PublishedEvent] = []

    async def publish(
        self, user_id: uuid.UUID, event_type: str, payload: Mapping[str, object]
    ) -> None:
        msgspec.json.encode(payload)  # a payload that is not JSON-ready is a bug: raise
        self.events.append(
            PublishedEvent(user_id=user_id, event_type=event_type, payload=dict(payload))
        )

    def of(self, user_id: uuid.UUID, event_type: str | None = None) -> list[PublishedEvent]:
        return [
            e
            for e in self.events
            if e.user_id == user_id and (event_type is None or e.event_type == event_type)
        ]
