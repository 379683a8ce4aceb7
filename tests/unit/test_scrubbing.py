"""The Sentry scrubber (entrypoints/scrubbing.py) on event dicts as sentry-sdk builds
them: real events captured by sentry-sdk itself (its own transport interface, local
variables on to make it harder), and requests shaped as its ASGI middleware and
Litestar integration write them, with store payloads in their bodies."""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from genstudio.entrypoints.scrubbing import (
    FILTERED,
    scrub_breadcrumb,
    scrub_event,
    scrub_text,
    sensitive_key,
)

JWS = (
    "eyJhbGciOiJFUzI1NiIsIng1YyI6WyJNSUlFTURDQ0E3YWdBd0lCQWdJUWFQb1BsZHZwU29FSDBsQnJqRGZ"
    ".eyJub3RpZmljYXRpb25UeXBlIjoiUkVGVU5EIiwiZGF0YSI6eyJhcHBBcHBsZUlkIjoxMjM0fX0"
    ".MEUCIQDx3Y9wV1a2kLm0pQr7zA"
)
PURCHASE_TOKEN = "opaque-purchase-token.AO-J1OyNtDKZ2sVdxYp4cQ3m9bH6"
PROMPT = "a portrait of my neighbour in the rain"
EMAIL = "jane.doe+gen@example.org"
SECRETS = (JWS, PURCHASE_TOKEN, PROMPT, EMAIL, "sk-live-123", "hunter2")


class Collecting(Transport):
    """sentry-sdk's transport interface: keeps the envelopes instead of sending them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


@pytest.fixture
def raw_events() -> Iterator[list[dict[str, Any]]]:
    """Events as sentry-sdk builds them, before our ``before_send`` would run."""
    seen: list[dict[str, Any]] = []

    def keep(event: Any, hint: Any) -> Any:
        seen.append(copy.deepcopy(event))
        return event

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=Collecting,
        before_send=keep,
        include_local_variables=True,  # the scrubber must cope even with these on
        default_integrations=True,
        auto_enabling_integrations=False,
    )
    try:
        yield seen
    finally:
        sentry_sdk.get_client().close(timeout=1)
        sentry_sdk.get_global_scope().set_client(None)


def _leaks(event: dict[str, Any]) -> list[str]:
    text = json.dumps(event)
    return [s for s in SECRETS if s in text]


def _store_payload_error(signed_payload: str, purchase_token: str, prompt: str) -> None:
    headers = {"Authorization": "Bearer " + JWS, "Idempotency-Key": "k-1"}
    email = EMAIL
    password = SECRETS[-1]  # noqa: F841  # a local variable the event carries
    # the message quotes the prompt bare: only the local variable says it is one
    raise RuntimeError(f"could not apply {prompt!r} for {email} ({len(headers)} headers)")


def test_a_real_exception_event_with_local_variables_leaks_nothing(
    raw_events: list[dict[str, Any]],
) -> None:
    try:
        _store_payload_error(JWS, PURCHASE_TOKEN, PROMPT)
    except RuntimeError:
        sentry_sdk.capture_exception()
    [raw] = raw_events
    assert _leaks(raw), "the raw event does carry them: the test would prove nothing"

    event = scrub_event(raw)
    assert _leaks(event) == []
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["vars"]["signed_payload"] == FILTERED
    assert frame["vars"]["purchase_token"] == FILTERED
    assert frame["vars"]["prompt"] == FILTERED
    assert frame["vars"]["password"] == FILTERED
    assert frame["function"] == "_store_payload_error", "the stack itself is kept"
    assert "Idempotency-Key" in json.dumps(frame["vars"]), "idempotency keys are kept"


def test_a_logged_error_with_extras_and_breadcrumbs_leaks_nothing(
    raw_events: list[dict[str, Any]],
) -> None:
    log = logging.getLogger("genstudio.test")
    log.setLevel(logging.INFO)
    log.info("purchase verified", extra={"purchase_token": PURCHASE_TOKEN, "user": EMAIL})
    log.warning("signed payload %s did not verify", JWS)
    log.error(
        "store call failed",
        extra={"url": "https://store.example/v1?token=sk-live-123&x=1", "email": EMAIL},
    )
    [raw] = raw_events
    assert _leaks(raw)
    event = scrub_event(raw)
    event["breadcrumbs"]["values"] = [scrub_breadcrumb(c) for c in event["breadcrumbs"]["values"]]
    assert _leaks(event) == []
    assert event["extra"]["url"] == f"https://store.example/v1?token={FILTERED}&x=1"
    messages = [c.get("message") for c in event["breadcrumbs"]["values"]]
    assert "purchase verified" in messages


def _request_event(path: str, data: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An event's request as sentry-sdk's ASGI middleware and Litestar integration write it."""
    return {
        "event_id": "0" * 32,
        "level": "error",
        "request": {
            "method": "POST",
            "url": f"https://api.genstudio.app{path}",
            "query_string": "token=sk-live-123&job=42",
            "headers": {"content-type": "application/json", **(headers or {})},
            "data": data,
        },
        "user": {"id": "u-1", "email": EMAIL, "ip_address": "203.0.113.9"},
        "exception": {"values": [{"type": "RuntimeError", "value": "boom"}]},
    }


def test_an_apple_notification_body_is_dropped_whole() -> None:
    event = scrub_event(_request_event("/v1/webhooks/apple", {"signedPayload": JWS}))
    assert event["request"]["data"] == FILTERED
    assert event["request"]["query_string"] == f"token={FILTERED}&job=42"
    assert event["user"] == {"id": "u-1"}
    assert _leaks(event) == []


def test_a_google_pubsub_push_body_is_dropped_whole() -> None:
    notification = {
        "version": "1.0",
        "packageName": "app.genstudio",
        "oneTimeProductNotification": {"purchaseToken": PURCHASE_TOKEN, "sku": "pack_100"},
    }
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(notification).encode()).decode(),
            "messageId": "136969346945",
        },
        "subscription": "projects/genstudio/subscriptions/rtdn",
    }
    event = scrub_event(
        _request_event("/v1/webhooks/google", body, {"authorization": "Bearer " + JWS})
    )
    assert event["request"]["data"] == FILTERED
    assert event["request"]["headers"]["authorization"] == FILTERED
    assert base64.b64encode(json.dumps(notification).encode()).decode() not in json.dumps(event)


def test_a_purchase_claim_body_is_dropped_and_a_generation_body_loses_its_prompts() -> None:
    claim = scrub_event(
        _request_event("/v1/purchases/google", {"purchaseToken": PURCHASE_TOKEN, "sku": "x"})
    )
    assert claim["request"]["data"] == FILTERED
    generation = scrub_event(
        _request_event(
            "/v1/generate/image",
            {"model": "flux-schnell", "prompt": PROMPT, "negativePrompt": "blurry", "width": 512},
        )
    )
    assert generation["request"]["data"] == {
        "model": "flux-schnell",
        "prompt": FILTERED,
        "negativePrompt": FILTERED,
        "width": 512,
    }
    assert _leaks(claim) == _leaks(generation) == []


def test_texts_lose_tokens_emails_and_prompts_as_reprs_and_json_write_them() -> None:
    text = (
        f"ImageParams(prompt={PROMPT!r}, width=512) "
        f'{{"prompt": "{PROMPT}", "email": "{EMAIL}"}} '
        f"Authorization: Bearer abc.def-ghi {JWS} mail {EMAIL} "
        "/v1/webhooks/runpod?token=s3cr3t&job=1"
    )
    scrubbed = scrub_text(text)
    for secret in (PROMPT, EMAIL, JWS, "abc.def-ghi", "s3cr3t"):
        assert secret not in scrubbed
    assert "width=512" in scrubbed and "job=1" in scrubbed


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("Authorization", True),
        ("X-Api-Key", True),
        ("cookie", True),
        ("purchase_token", True),
        ("purchaseToken", True),
        ("signedPayload", True),
        ("negative_prompt", True),
        ("SUPABASE_SERVICE_KEY", True),
        ("sentry_dsn", True),
        ("email", True),
        ("Idempotency-Key", False),
        ("X-Request-Id", False),
        ("job_id", False),
        ("status", False),
        ("route", False),
    ],
)
def test_which_keys_are_sensitive(key: str, sensitive: bool) -> None:
    assert sensitive_key(key) is sensitive


def test_scrubbing_leaves_the_event_it_was_given_unchanged() -> None:
    event = _request_event("/v1/generate/image", {"prompt": PROMPT})
    before = copy.deepcopy(event)
    scrub_event(event)
    assert event == before
