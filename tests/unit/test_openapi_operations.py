"""Every operation of the OpenAPI document the typed client is generated from (issue
#20): named, tagged and summarised, its problems declared from what it reads, and every
answer it gives to a request the client can send (no token, a user's token, an
operator's, ids that name nothing, a body that is malformed or empty, a query that is
wrong) documented with its status and its media type.

The second half asks the app itself, over the memory adapters (``genstudio.testing``):
a status or a media type the document does not declare is a type the generated client
does not know.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from genstudio.testing.http import MemoryHttpApp

METHODS = ("get", "head", "post", "put", "patch", "delete")
PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: what Litestar writes when a response has no description of ours
LITESTAR_DEFAULTS = {
    "Bad request syntax or unsupported method",
    "Request fulfilled, nothing follows",
}

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture
async def document(genstudio_http: MemoryHttpApp) -> dict[str, Any]:
    response = await genstudio_http.client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[Operation]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _parameters(op: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in op.get("parameters", []) if p["in"] == where]


def _secured(op: dict[str, Any]) -> bool:
    return op.get("security") != []  # the document's default is the bearer scheme


def test_every_operation_is_named_tagged_and_summarised(document: dict[str, Any]) -> None:
    operations = _operations(document)
    ids = [str(op.get("operationId")) for _, _, op in operations]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        op_id = op.get("operationId")
        assert isinstance(op_id, str) and op_id[:1].islower() and op_id.isalnum(), where
        assert op.get("tags") and all(isinstance(t, str) and t for t in op["tags"]), where
        assert op.get("summary"), f"{where}: a summary (the client's doc comment)"


def test_what_an_operation_reads_has_its_problems_documented(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for method, path, op in _operations(document):
        needed = {431, 503}  # every request: the head's limits, the request deadline
        if _secured(op):
            needed.add(401)
        if not path.startswith("/health/"):
            needed.add(429)
        if _parameters(op, "path"):
            needed |= {404, 422}  # names nothing; not an id at all
        if _parameters(op, "query") or _parameters(op, "header"):
            needed.add(422)
        if any(p["name"].lower() == "idempotency-key" for p in _parameters(op, "header")):
            needed.add(409)  # the first request with this key is still in flight
        if "requestBody" in op:
            needed |= {413, 422}
            if set(op["requestBody"]["content"]) & {"application/json", "multipart/form-data"}:
                needed.add(400)  # malformed JSON, a malformed form
        if "operations" in op.get("tags", ()):
            needed.add(403)  # a user's token, not the service role's
        documented = {int(s) for s in op["responses"]}
        if needed - documented:
            missing.append(f"{method.upper()} {path}: {sorted(needed - documented)}")
    assert not missing, "problems not documented:\n" + "\n".join(missing)


def test_every_problem_response_is_described_as_a_problem(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    wrong: list[str] = []
    for method, path, op in _operations(document):
        assert any(int(s) < 400 for s in op["responses"]), f"{method} {path}: no success"
        for status, response in op["responses"].items():
            where = f"{method.upper()} {path} {status}"
            described = response.get("description") not in (None, "", *LITESTAR_DEFAULTS)
            if int(status) >= 400 and not described:
                wrong.append(f"{where}: no description of what it means")
            if int(status) < 400 or status == "416":  # 416: the media route's bare answer
                continue
            content = response.get("content", {})
            if content.get(PROBLEM, {}).get("schema") != PROBLEM_REF:
                wrong.append(f"{where}: not a Problem as {PROBLEM}")
    assert not wrong, "\n".join(wrong)


def _value(schema: dict[str, Any]) -> str:
    """A value of a path parameter's type that names nothing."""
    variants = [v for v in schema.get("oneOf", [schema]) if v.get("type") != "null"]
    kind = variants[0] if variants else {}
    if kind.get("format") == "uuid":
        return str(uuid.uuid4())
    if kind.get("type") == "integer":
        return "7"
    return "nothing-here"


def _requests(op: dict[str, Any], http: MemoryHttpApp) -> list[tuple[str, dict[str, str], bytes]]:
    """(what, headers, body) of each request the sweep sends an operation."""
    user = http.headers(uuid.uuid4())
    sent: list[tuple[str, dict[str, str], bytes]] = [("no token", {}, b""), ("a user", user, b"")]
    if "operations" in op.get("tags", ()):
        sent.append(("the service role", http.headers(uuid.uuid4(), role="service_role"), b""))
    if "requestBody" in op:
        media = next(iter(op["requestBody"]["content"]))
        if media == "multipart/form-data":
            media += "; boundary=x"
        headers = {**user, "Content-Type": media, "Idempotency-Key": str(uuid.uuid4())}
        sent += [("a malformed body", headers, b"{"), ("an empty object", headers, b"{}")]
    return sent


async def test_every_answer_an_operation_gives_is_documented(
    document: dict[str, Any], genstudio_http: MemoryHttpApp
) -> None:
    undocumented: list[str] = []
    count = 0
    for method, path, op in _operations(document):
        url = path
        for parameter in _parameters(op, "path"):
            url = url.replace("{" + parameter["name"] + "}", _value(parameter["schema"]))
        targets = [(url, "")]
        if _parameters(op, "path"):  # an id that is not an id
            bad = path
            for parameter in _parameters(op, "path"):
                bad = bad.replace("{" + parameter["name"] + "}", "%20not%20an%20id")
            targets.append((bad, ""))
        if _parameters(op, "query"):  # every query parameter of the wrong shape
            query = "&".join(f"{p['name']}=%00%FF{'x' * 300}" for p in _parameters(op, "query"))
            targets.append((url, query))
        for target, query in targets:
            for what, headers, body in _requests(op, genstudio_http):
                count += 1
                # one client address per request: the sweep is not what the limits test
                headers = {**headers, "X-Forwarded-For": f"10.{count // 250}.{count % 250}.1"}
                response = await genstudio_http.client.request(
                    method.upper(),
                    target + (f"?{query}" if query else ""),
                    headers=headers,
                    content=body,
                )
                status = str(response.status_code)
                declared = op["responses"].get(status)
                where = f"{method.upper()} {target}{'?…' if query else ''} with {what}: {status}"
                if declared is None:
                    undocumented.append(f"{where} not documented ({response.text[:120]})")
                    continue
                media = response.headers.get("content-type", "").split(";")[0]
                described = declared.get("content")
                if response.content and described and not _matches(media, described):
                    undocumented.append(
                        f"{where} answers {media}, documented as {sorted(described)}"
                    )
                if response.status_code >= 400 and media == PROBLEM and response.content:
                    problem = response.json()
                    assert problem["status"] == response.status_code, where
                    assert {"type", "title", "detail"} <= set(problem), where
    assert count > 200  # every operation was asked
    assert not undocumented, "\n".join(undocumented)


def _matches(media: str, declared: dict[str, Any]) -> bool:
    for candidate in declared:
        kind, _, sub = candidate.partition("/")
        if candidate == media or candidate == "*/*" or (sub == "*" and media.startswith(kind)):
            return True
    return False
