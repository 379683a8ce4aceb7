"""The OpenAPI document says exactly what the social, safety and notification routes
take (issue #19), and every route refuses a query parameter it does not document."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from litestar.testing import TestClient

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.notifications import check_time_zone, time_zones
from genstudio.core.model.social import check_comment, check_text, check_username
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.openapi_fields import printable, time_zone, username, written
from genstudio.entrypoints.http.query import QUERY_NAMES
from genstudio.entrypoints.settings import Settings

#: built, never started: no database is opened
APP = create_app(Settings())
DOCUMENT: dict[str, Any] = APP.openapi_schema.to_schema()
SCHEMAS = DOCUMENT["components"]["schemas"]

#: every control character, the bidi overrides, white space, letters of several
#: scripts, a private-use code point, an emoji newer than Python 3.11's Unicode 14
SAMPLES = [
    *(chr(c) for c in range(0x00, 0xA1)),
    *"\u202a\u202e\u2066\u2069\u200b\u2028\u3000\u00e9\u4e2d\u05d0\uf8ff\u212a",
    "\U0001fae8",
    "\U0001f600",
]


def _patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "pattern" and isinstance(v, str)]
        return found + [p for k, v in node.items() if k != "pattern" for p in _patterns(v)]
    if isinstance(node, list):
        return [p for item in node for p in _patterns(item)]
    return []


def _accepted(check: Any, value: str) -> bool:
    try:
        check(value)
    except InvalidInput:
        return False
    return True


def test_every_pattern_is_one_the_validators_compile() -> None:
    # a lone surrogate in a class made jsonschema-rs refuse the pattern, and the
    # fuzzer then drew strings the pattern does not allow as valid ones
    for pattern in set(_patterns(DOCUMENT)):
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        re.compile(pattern)


@pytest.mark.parametrize("newlines", [True, False])
def test_free_text_is_documented_as_check_text_takes_it(newlines: bool) -> None:
    pattern = re.compile(printable(newlines=newlines))
    for ch in SAMPLES:
        for text in (f"a{ch}b", f"{ch}b", f"a{ch}"):
            checked = _accepted(lambda t: check_text(t, "bio", 10, newlines=newlines), text)
            assert bool(pattern.fullmatch(text)) == checked, (ch, text)


def test_a_comment_is_documented_as_needing_more_than_white_space() -> None:
    pattern = re.compile(written())
    for text in ["", " ", "\n\t ", "\u3000", "a", " a ", "\n\x85x", "a\x00", "\u202e x"]:
        assert bool(pattern.fullmatch(text)) == _accepted(check_comment, text), repr(text)


def test_a_username_is_documented_as_check_username_takes_it() -> None:
    pattern = re.compile(username())
    names = ["abc", "ABC", " a.b_c ", "ab", "a" * 30, "a" * 31, "a-b", "\u212aat", "ki\u0307d"]
    for name in names + [f"\u3000{n}\n" for n in names]:
        assert bool(pattern.fullmatch(name)) == _accepted(check_username, name), repr(name)


def test_the_time_zones_are_documented_as_the_ones_taken() -> None:
    pattern = re.compile(time_zone())
    for zone in time_zones():
        assert pattern.fullmatch(zone) and _accepted(check_time_zone, zone)
    for wrong in ["", "utc", "localtime", "Europe", "Europe/Berlinx", "Etc/GMT+55", "../x"]:
        assert not pattern.fullmatch(wrong) and not _accepted(check_time_zone, wrong), wrong
    zone = SCHEMAS["NotificationPreferencesPatch"]["properties"]["timeZone"]["oneOf"][0]
    assert zone["pattern"] == time_zone()


def test_enumerations_are_listed() -> None:
    report = SCHEMAS["ReportRequest"]["properties"]
    assert report["targetType"] == {"$ref": "#/components/schemas/TargetKind"}
    assert SCHEMAS["TargetKind"]["enum"] == ["post", "comment", "user"]
    assert SCHEMAS["Visibility"]["enum"] == ["public", "unlisted"]
    feed = DOCUMENT["paths"]["/v1/feed"]["get"]["parameters"]
    assert next(p for p in feed if p["name"] == "sort")["schema"] == {
        "$ref": "#/components/schemas/FeedSort"
    }
    mark_read = SCHEMAS["MarkReadRequest"]
    assert [branch["required"] for branch in mark_read["oneOf"]] == [["all"], ["ids"]]


def test_each_route_takes_the_query_parameters_it_documents() -> None:
    def handler(path: str) -> Any:
        return next(r for r in APP.routes if getattr(r, "path_format", None) == path)

    credits = handler("/v1/me/credits").route_handlers[0]
    assert credits.opt[QUERY_NAMES] == frozenset({"limit", "cursor"})
    share = DOCUMENT["paths"]["/p/{share_id}"]["get"]["parameters"]
    free = next(p for p in share if p["in"] == "query")
    assert free["style"] == "form" and free["explode"] is True  # utm_source, fbclid: taken
    assert handler("/p/{share_id}").route_handlers[0].opt[QUERY_NAMES] is None


@pytest.mark.parametrize(
    ("url", "field"),
    [("/health/live?verbose=1", "verbose"), ("/v1/me/credits?limit=5&limt=5", "limt")],
)
def test_a_query_parameter_the_route_does_not_take_is_refused(url: str, field: str) -> None:
    client = TestClient(app=APP)  # not entered: no lifespan, the refusal needs none
    response = client.get(url)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_input" and problem["field"] == field
    assert field in problem["detail"]
