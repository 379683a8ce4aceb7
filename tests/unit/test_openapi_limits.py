"""The OpenAPI document states the limits the handlers enforce (issue #19: what
schemathesis found accepted or refused against the document)."""

from __future__ import annotations

from datetime import time
from typing import Any

import msgspec
import pytest

from genstudio.core.model.errors import InvalidInput
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.bodies import strict_json
from genstudio.entrypoints.http.notifications.schemas import MarkReadRequest
from genstudio.entrypoints.settings import Settings

#: built, never started: no database is opened
DOCUMENT: dict[str, Any] = create_app(Settings()).openapi_schema.to_schema()
SCHEMAS = DOCUMENT["components"]["schemas"]


def test_the_inbox_page_size_is_documented_as_1_to_100() -> None:
    parameters = DOCUMENT["paths"]["/v1/notifications"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)


def test_a_push_token_is_documented_as_an_expo_token_of_a_known_platform() -> None:
    properties = SCHEMAS["RegisterTokenRequest"]["properties"]
    assert properties["token"]["pattern"].startswith("^(ExponentPushToken|ExpoPushToken)")
    assert properties["platform"]["enum"] == ["ios", "android"]


def test_quiet_hours_are_documented_as_the_times_the_decoder_takes() -> None:
    start = SCHEMAS["QuietHoursBody"]["properties"]["start"]
    assert "format" not in start  # Litestar said "duration"; "P1D" was refused
    assert start["pattern"].startswith("^([01][0-9]|2[0-3])")
    for written in ("22:00:00", "07:30:00.5"):
        msgspec.json.decode(f'"{written}"'.encode(), type=time)


def test_a_negative_prompt_is_documented_without_control_characters() -> None:
    negative = SCHEMAS["ImageRequest"]["properties"]["negativePrompt"]
    assert negative["pattern"] == "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"


@pytest.mark.parametrize("body", [b'{"all": 0}', b'{"all": 1}', b'{"all": "true"}'])
def test_marking_read_takes_only_a_real_boolean(body: bytes) -> None:
    with pytest.raises(InvalidInput) as refused:
        strict_json(body, MarkReadRequest)
    assert refused.value.field == "all"
