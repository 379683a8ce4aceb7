"""Analytics wired from the environment (issue #20): off without POSTHOG_API_KEY;
with it, the app's use cases track over HTTP, a user's opt-out set through
``PATCH /v1/me/profile`` holds, and the app's shutdown sends what was queued to
PostHog (its stand-in here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import msgspec
import pytest

from genstudio.adapters.posthog import DEFAULT_HOST, PostHogAnalytics
from genstudio.core.services.analytics import Tracker
from genstudio.entrypoints.analytics import build_analytics
from genstudio.entrypoints.settings import PostHogSettings, Settings
from genstudio.testing.application import MemoryApplication
from genstudio.testing.http import MemoryHttpApp
from tests.standins.posthog import PostHogStandIn

KEY = "phc_wiring"
PROMPT = "a fox drawn by Jane Roe"


def test_posthog_settings_read_only_their_variables_with_cloud_as_the_default_host() -> None:
    assert PostHogSettings.from_env({"OPENROUTER_API_KEY": "x"}) == PostHogSettings()
    assert PostHogSettings().host == DEFAULT_HOST and not PostHogSettings().enabled
    env = {"POSTHOG_API_KEY": " phc_1 ", "POSTHOG_HOST": "https://eu.i.posthog.com"}
    read = Settings.from_env(env).posthog
    assert (read.api_key, read.host, read.enabled) == ("phc_1", "https://eu.i.posthog.com", True)


async def test_analytics_is_off_without_a_key_and_posthog_with_one() -> None:
    app = MemoryApplication()
    assert build_analytics(Settings(), app.uow_factory) is None
    on = Settings(posthog=PostHogSettings(api_key=KEY, host="http://127.0.0.1:9"))
    tracker = build_analytics(on, app.uow_factory)
    assert isinstance(tracker, Tracker) and isinstance(tracker.sink, PostHogAnalytics)
    await tracker.aclose()


@pytest.fixture
def posthog() -> Iterator[PostHogStandIn]:
    with PostHogStandIn(api_key=KEY) as standin:
        yield standin


async def test_over_http_events_reach_posthog_at_shutdown_and_an_opt_out_holds(
    posthog: PostHogStandIn,
) -> None:
    def with_posthog(settings: Settings) -> Settings:
        return msgspec.structs.replace(
            settings, posthog=PostHogSettings(api_key=KEY, host=posthog.url)
        )

    app = MemoryApplication()
    async with MemoryHttpApp(app, settings=with_posthog) as http:
        tracked, quiet = await app.users.with_credits(10), await app.users.with_credits(10)
        opted = await http.client.patch(
            "/v1/me/profile",
            json={"preferences": {"analytics": False}},
            headers=http.headers(quiet),
        )
        assert opted.status_code == 200 and opted.json()["preferences"]["analytics"] is False
        shown = await http.client.get("/v1/me/profile", headers=http.headers(tracked))
        assert shown.json()["preferences"]["analytics"] is True
        for user in (tracked, quiet):
            answer = await http.client.post(
                "/v1/generate/image",
                json={"prompt": PROMPT, "model": "flux-schnell"},
                headers=http.headers(user) | {"Idempotency-Key": str(uuid.uuid4())},
            )
            assert answer.status_code == 202
        await http.run_jobs()
    # the app has shut down: its analytics were flushed to PostHog on the way out
    assert [(e["event"], e["distinct_id"]) for e in posthog.events] == [
        ("generation_submitted", str(tracked)),
        ("generation_succeeded", str(tracked)),
    ]
    sent = b"".join(r.body for r in posthog.requests)
    assert b"Jane" not in sent and b"fox" not in sent  # gzip or not: no prompt at all
    assert "Jane" not in str(posthog.events)
