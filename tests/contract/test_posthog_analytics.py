"""The PostHog adapter (the official SDK) against the PostHog stand-in: events arrive
with what PostHog needs and nothing else, in gzipped batches, and no failure of
PostHog's (500, 429, a stall, nothing listening) reaches the caller or holds it up.
The port's contract (genstudio.testing.contracts.analytics) runs in test_analytics.py."""

from __future__ import annotations

import gzip
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from genstudio.adapters.posthog import PostHogAnalytics
from genstudio.core.model.analytics import PROPERTIES, AnalyticsEvent, EventName
from tests.standins.loopback import Fail, RateLimit, Stall
from tests.standins.posthog import PostHogStandIn

KEY = "phc_test_project"
USER = uuid.UUID("0190f7e2-0000-7000-8000-000000000001")
AT = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def posthog() -> Iterator[PostHogStandIn]:
    with PostHogStandIn(api_key=KEY) as standin:
        yield standin


def event(i: int = 0, user: uuid.UUID = USER) -> AnalyticsEvent:
    return AnalyticsEvent(
        name=EventName.GENERATION_SUBMITTED,
        user_id=user,
        at=AT,
        properties={"kind": "image", "model": "flux-schnell", "credits": i},
    )


def client(posthog: PostHogStandIn, **kw: object) -> PostHogAnalytics:
    options: dict[str, object] = {"flush_interval": 0.05, "timeout": 1.0, "close_timeout": 10.0}
    return PostHogAnalytics(KEY, host=posthog.url, **(options | kw))  # type: ignore[arg-type]


async def test_events_arrive_keyed_by_user_with_their_id_time_and_properties(
    posthog: PostHogStandIn,
) -> None:
    analytics = client(posthog)
    sent = [event(i) for i in range(3)]
    for e in sent:
        analytics.capture(e)
    await analytics.aclose()

    assert [e["uuid"] for e in posthog.events] == [str(e.id) for e in sent]
    first = posthog.events[0]
    assert first["event"] == "generation_submitted"
    assert first["distinct_id"] == str(USER)
    assert first["api_key"] == KEY
    assert datetime.fromisoformat(first["timestamp"]) == AT
    assert first["properties"]["credits"] == 0 and first["properties"]["model"] == "flux-schnell"
    request = posthog.requests[0]
    assert request.path == "/batch/" and request.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(request.body))["api_key"] == KEY


async def test_only_our_properties_and_the_sdks_own_are_sent_with_geoip_off(
    posthog: PostHogStandIn,
) -> None:
    analytics = client(posthog)
    analytics.capture(event())
    await analytics.aclose()
    properties = posthog.events[0]["properties"]
    ours = {k for k in properties if not k.startswith("$")}
    assert ours <= PROPERTIES
    assert properties["$geoip_disable"] is True
    assert properties["$lib"] == "posthog-python"


async def test_events_go_in_batches_of_flush_at(posthog: PostHogStandIn) -> None:
    analytics = client(posthog, flush_at=10, flush_interval=30.0)
    for i in range(25):
        analytics.capture(event(i))
    await analytics.aclose()  # the last partial batch goes at shutdown, not after 30 s
    assert sorted(posthog.batches) == [5, 10, 10]
    assert len({e["uuid"] for e in posthog.events}) == 25


async def test_a_server_error_is_retried_and_the_events_arrive(posthog: PostHogStandIn) -> None:
    posthog.inject(Fail(500))
    analytics = client(posthog, max_retries=2)
    analytics.capture(event())
    await analytics.aclose()
    assert len(posthog.requests) == 2
    assert len(posthog.events) == 1 and analytics.failed_batches == 0


async def test_a_rate_limit_is_retried_and_the_events_arrive(posthog: PostHogStandIn) -> None:
    posthog.inject(RateLimit(retry_after=0))
    analytics = client(posthog, max_retries=2)
    analytics.capture(event())
    await analytics.aclose()
    assert len(posthog.events) == 1 and analytics.failed_batches == 0


async def test_posthog_failing_for_good_never_raises_and_drops_the_batch(
    posthog: PostHogStandIn,
) -> None:
    posthog.inject(Fail(503), times=100)
    analytics = client(posthog, max_retries=1)
    analytics.capture(event())  # no exception here ...
    await analytics.aclose()  # ... nor here
    assert posthog.events == [] and analytics.failed_batches == 1


async def test_a_stalled_posthog_holds_up_neither_capture_nor_shutdown_beyond_its_bound(
    posthog: PostHogStandIn,
) -> None:
    posthog.inject(Stall(seconds=30), times=100)
    analytics = client(posthog, timeout=0.3, max_retries=0, close_timeout=3.0)
    started = time.monotonic()
    for i in range(50):
        analytics.capture(event(i))
    assert time.monotonic() - started < 0.5  # queued, not sent
    started = time.monotonic()
    await analytics.aclose()
    assert time.monotonic() - started < 3.5
    assert posthog.events == [] and analytics.failed_batches == 1


async def test_nothing_listening_is_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    analytics = PostHogAnalytics(
        KEY, host=f"http://127.0.0.1:{port}", flush_interval=0.05, max_retries=0, close_timeout=5
    )
    analytics.capture(event())
    await analytics.aclose()
    assert analytics.failed_batches == 1


# --- the stand-in's other capture endpoints, as PostHog's docs describe them ------------


def test_the_stand_in_takes_single_events_on_capture_paths_gzipped(
    posthog: PostHogStandIn,
) -> None:
    one = {"api_key": KEY, "event": "x", "properties": {"distinct_id": "u1"}}
    for path in ("/capture/", "/i/v0/e/"):
        body = gzip.compress(json.dumps(one).encode())
        answer = httpx.post(f"{posthog.url}{path}", content=body, params={"compression": "gzip-js"})
        assert answer.status_code == 200 and answer.json() == {"status": 1}
    assert [e["distinct_id"] for e in posthog.events] == ["u1", "u1"]
    wrong = httpx.post(f"{posthog.url}/batch/", json={"api_key": "nope", "batch": [one]})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"
