"""The OpenAPI document the typed client is generated from (issues #19 and #20): every
operation named, tagged and with the problems it can answer declared."""

from __future__ import annotations

from typing import Any

import pytest

from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.openapi import NOT_PROBLEMS
from genstudio.entrypoints.settings import DatabaseSettings, Settings, SupabaseSettings

METHODS = ("get", "head", "post", "put", "patch", "delete")
PROBLEM = "application/problem+json"
PUBLIC = (
    "/health/",
    "/v1/webhooks/",
    "/media/",
    "/p/",
    "/m/",
    "/avatars/",
)  # share pages, public media, avatars (issue #17)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(
        Settings(
            database=DatabaseSettings(url="postgresql://unused/x"),
            supabase=SupabaseSettings(jwt_secret="s" * 40),
        )
    )
    return app.openapi_schema.to_schema()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_operation_has_a_unique_camel_case_id_and_tags(document: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in _operations(document)]
    assert all(isinstance(i, str) and i[:1].islower() and i.isalnum() for i in ids), ids
    assert len(ids) == len(set(ids))
    assert all(op.get("tags") for _, _, op in _operations(document))
    named = {op["operationId"] for _, _, op in _operations(document)}
    assert {"generateImage", "getJob", "cancelJob", "getMe", "listModels"} <= named


def test_every_operation_declares_its_problems_as_problem_json(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert {"field", "requestId"} <= set(problem["properties"])
    for path, method, op in _operations(document):
        responses = op["responses"]
        assert {"431", "503"} <= set(responses), (method, path)
        public = path.startswith(PUBLIC)
        assert ("401" in responses) or public, (method, path)
        if not path.startswith("/health/"):
            assert "429" in responses, (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(responses), (method, path)
        for status, response in responses.items():
            if int(status) >= 400 and response.get("content"):
                content = response["content"]
                # a problem, and besides it only a document the route declares its own
                own = NOT_PROBLEMS.get(op["operationId"], {}).get(int(status))
                expected = [PROBLEM] if own is None else [PROBLEM, own[0]]
                assert list(content) == expected, (method, path, status)
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_public_routes_need_no_token_while_bearer_is_the_default(
    document: dict[str, Any],
) -> None:
    assert document["security"] == [{"bearer": []}]
    for path, method, op in _operations(document):
        if path.startswith(PUBLIC):
            assert op.get("security") == [], (method, path)
        else:
            assert "security" not in op, (method, path)


def test_submissions_answer_the_job_schema_not_a_string(document: dict[str, Any]) -> None:
    for path in ("/v1/generate/image", "/v1/generate/edit", "/v1/generate/video"):
        accepted = document["paths"][path]["post"]["responses"]["202"]
        schema = accepted["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/JobResponse"}, path
    money = {"generateImage", "generateEdit", "generateVideo", "startTraining", "rerunJob"}
    for _, _, op in _operations(document):
        if op["operationId"] in money:
            assert "402" in op["responses"], op["operationId"]


def test_forms_and_field_limits_are_described(document: dict[str, Any]) -> None:
    edit = document["paths"]["/v1/generate/edit"]["post"]["requestBody"]["content"]
    form = edit["multipart/form-data"]["schema"]
    assert form["additionalProperties"] is False
    assert {"image", "mask", "model", "prompt"} <= set(form["required"])
    assert form["properties"]["image"]["format"] == "binary"
    image = document["components"]["schemas"]["ImageRequest"]
    assert image["additionalProperties"] is False
    assert image["properties"]["width"]["minimum"] == 64
    assert image["properties"]["width"]["maximum"] == 2048
    assert image["properties"]["width"]["multipleOf"] == 8
    assert image["properties"]["prompt"]["maxLength"] == 2000
    submit = document["paths"]["/v1/generate/image"]["post"]["parameters"]
    key = next(p for p in submit if p["name"] == "Idempotency-Key")
    assert key["schema"]["maxLength"] == 255
