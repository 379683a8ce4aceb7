"""The realtime port's contract, over the memory adapter (the realtime fan-out adds its own)."""

from __future__ import annotations

import uuid

import pytest

from genstudio.adapters.memory.realtime import RecordingRealtimePublisher
from genstudio.ports.realtime import NOTIFICATION_CREATED, RealtimePublisher


async def test_published_events_are_kept_per_user_in_order() -> None:
    publisher = RecordingRealtimePublisher()
    port: RealtimePublisher = publisher
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await port.publish(alice, NOTIFICATION_CREATED, {"id": "1"})
    await port.publish(bob, NOTIFICATION_CREATED, {"id": "2"})
    await port.publish(alice, "job.updated", {"jobId": "j", "progress": 50})
    assert [e.payload for e in publisher.of(alice)] == [
        {"id": "1"},
        {"jobId": "j", "progress": 50},
    ]
    assert [e.payload for e in publisher.of(bob, NOTIFICATION_CREATED)] == [{"id": "2"}]


async def test_a_payload_that_is_not_json_ready_is_refused() -> None:
    publisher = RecordingRealtimePublisher()
    with pytest.raises(TypeError):
        await publisher.publish(uuid.uuid4(), NOTIFICATION_CREATED, {"x": object()})
    assert publisher.events == []
