"""The Analytics contract (genstudio.testing.contracts.analytics, the suite an outside
adapter runs too) over the PostHog adapter against its stand-in and over the
recording adapter in memory (which has no service to fail: its outage is none)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from genstudio.adapters.memory.analytics import RecordingAnalytics
from genstudio.adapters.posthog import PostHogAnalytics
from genstudio.ports.analytics import Analytics
from genstudio.testing.contracts.analytics import AnalyticsContract, Received
from genstudio.testing.standins.loopback import Fail
from tests.standins.posthog import PostHogStandIn

KEY = "phc_test_project"


class TestPostHogAnalytics(AnalyticsContract):
    close_seconds = 5.0

    @pytest.fixture
    def posthog(self) -> Iterator[PostHogStandIn]:
        with PostHogStandIn(api_key=KEY) as standin:
            yield standin

    @pytest.fixture
    def analytics_factory(self, posthog: PostHogStandIn) -> Callable[[], Analytics]:
        return lambda: PostHogAnalytics(
            KEY,
            host=posthog.url,
            flush_interval=0.05,
            timeout=0.5,
            max_retries=1,
            close_timeout=3.0,
        )

    @pytest.fixture
    def analytics_received(self, posthog: PostHogStandIn) -> Received:
        return lambda: [(e["uuid"], e["event"], e["distinct_id"]) for e in posthog.events]

    @pytest.fixture
    def analytics_outage(self, posthog: PostHogStandIn) -> Callable[[], None]:
        return lambda: posthog.inject(Fail(503), times=1000)


class TestRecordingAnalytics(AnalyticsContract):
    @pytest.fixture
    def recording(self) -> RecordingAnalytics:
        return RecordingAnalytics()

    @pytest.fixture
    def analytics_factory(self, recording: RecordingAnalytics) -> Callable[[], Analytics]:
        return lambda: recording

    @pytest.fixture
    def analytics_received(self, recording: RecordingAnalytics) -> Received:
        return lambda: [(str(e.id), e.name.value, str(e.user_id)) for e in recording.events]

    @pytest.fixture
    def analytics_outage(self) -> Callable[[], None]:
        return lambda: None
