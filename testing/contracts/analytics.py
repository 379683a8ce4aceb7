"""The ``Analytics`` contract (``genstudio.ports.analytics``), for any product
analytics adapter (PostHog in production; Segment, Mixpanel, your warehouse...).

Subclass ``AnalyticsContract`` and override three fixtures: ``analytics_factory`` (a
function making the adapter, pointed at your stand-in), ``analytics_received`` (a
function returning what the service has received so far: ``(event id, event name,
user id)`` triples, as strings) and ``analytics_outage`` (a function after which the
service fails every request)::

    class TestMyAnalytics(AnalyticsContract):
        @pytest.fixture
        def analytics_factory(self, my_standin):
            return lambda: MyAnalytics(host=my_standin.url, flush_interval=0.05)

        @pytest.fixture
        def analytics_received(self, my_standin):
            return lambda: [(e["uuid"], e["event"], e["distinct_id"]) for e in my_standin.events]

        @pytest.fixture
        def analytics_outage(self, my_standin):
            return lambda: my_standin.inject(Fail(503), times=1000)

``close_seconds`` (a class attribute, 10 by default) bounds how long ``aclose`` may take
while the service fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from genstudio.core.model.analytics import AnalyticsEvent, EventName
from genstudio.ports.analytics import Analytics

Received = Callable[[], list[tuple[str, str, str]]]


def an_event(i: int, user: uuid.UUID) -> AnalyticsEvent:
    return AnalyticsEvent(
        name=EventName.GENERATION_SUBMITTED if i % 2 else EventName.CREDITS_PURCHASED,
        user_id=user,
        at=datetime(2026, 12, 10, 12, 0, tzinfo=UTC),
        properties={"kind": "image", "credits": i},
    )


@pytest.mark.asyncio
class AnalyticsContract:
    """What genstudio's after-commit tracking relies on from every analytics adapter."""

    #: the longest ``aclose`` may take while the service fails
    close_seconds = 10.0

    @pytest.fixture
    def analytics_factory(self) -> Callable[[], Analytics]:
        """Override: a function making the adapter under test."""
        pytest.fail(f"{type(self).__name__} must override the analytics_factory fixture")

    @pytest.fixture
    def analytics_received(self) -> Received:
        """Override: what the service received so far."""
        pytest.fail(f"{type(self).__name__} must override the analytics_received fixture")

    @pytest.fixture
    def analytics_outage(self) -> Callable[[], None]:
        """Override: a function after which the service fails every request."""
        pytest.fail(f"{type(self).__name__} must override the analytics_outage fixture")

    async def test_what_was_captured_has_arrived_once_when_close_returns(
        self, analytics_factory: Callable[[], Analytics], analytics_received: Received
    ) -> None:
        analytics = analytics_factory()
        users = [uuid.uuid4(), uuid.uuid4()]
        sent = [an_event(i, users[i % 2]) for i in range(25)]
        for event in sent:
            analytics.capture(event)

        await analytics.aclose()

        received = analytics_received()
        assert sorted(received) == sorted((str(e.id), e.name.value, str(e.user_id)) for e in sent)

    async def test_capture_only_queues(
        self, analytics_factory: Callable[[], Analytics], analytics_outage: Callable[[], None]
    ) -> None:
        analytics = analytics_factory()
        analytics_outage()  # a service that fails must not slow a request down either
        started = time.monotonic()
        for i in range(200):
            analytics.capture(an_event(i, uuid.uuid4()))
        assert time.monotonic() - started < 1.0
        await analytics.aclose()

    async def test_a_failing_service_never_raises_and_close_keeps_its_bound(
        self, analytics_factory: Callable[[], Analytics], analytics_outage: Callable[[], None]
    ) -> None:
        analytics = analytics_factory()
        analytics_outage()
        analytics.capture(an_event(1, uuid.uuid4()))  # no exception here ...
        started = time.monotonic()
        await analytics.aclose()  # ... nor here
        assert time.monotonic() - started < self.close_seconds

    async def test_events_after_close_are_dropped_and_closing_again_is_fine(
        self, analytics_factory: Callable[[], Analytics], analytics_received: Received
    ) -> None:
        analytics = analytics_factory()
        await analytics.aclose()

        analytics.capture(an_event(1, uuid.uuid4()))
        await analytics.aclose()

        assert analytics_received() == []
