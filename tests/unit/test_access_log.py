"""Request ids and the access log (entrypoints/http/access.py), the docs page with no
outside address (entrypoints/http/docs.py), and the two log formats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from genstudio.entrypoints.http.access import AccessLog
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.deadline import Deadline
from genstudio.entrypoints.logs import REQUEST_ID, JsonFormatter, TextFormatter, wants_json
from genstudio.entrypoints.settings import Settings, SupabaseSettings

Message = dict[str, Any]


@asynccontextmanager
async def no_runtime(settings: Settings) -> AsyncIterator[Any]:
    yield SimpleNamespace(container=None)  # these requests never reach the container


class Lines:
    """What the root logger writes, through one of our formatters."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    def __enter__(self) -> Lines:
        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)

    def text(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text()]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    with Lines(JsonFormatter()) as lines:
        yield lines


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(
        Settings(supabase=SupabaseSettings(jwt_secret="x" * 32)), runtime_opener=no_runtime
    )
    async with AsyncTestClient(app) as c:
        yield c


async def test_every_answer_has_a_request_id_also_in_its_problem_and_access_line(
    client: AsyncTestClient[Any], json_lines: Lines
) -> None:
    unknown = await client.get("/v1/no-such-route")
    not_allowed = await client.delete("/health/live")
    fine = await client.get("/health/live")
    assert fine.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", fine.headers["x-request-id"])
    for response in (unknown, not_allowed):
        request_id = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert response.json()["requestId"] == request_id
    assert unknown.headers["x-request-id"] != not_allowed.headers["x-request-id"]

    access = [line for line in json_lines.json() if line["logger"] == "genstudio.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/v1/no-such-route", 404),
        ("DELETE", "/health/live", 405),
        ("GET", "/health/live", 200),
    ]
    assert [a["request_id"] for a in access] == [
        r.headers["x-request-id"] for r in (unknown, not_allowed, fine)
    ]
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in access)
    assert all("user_id" not in a for a in access)  # nobody authenticated


async def test_a_sane_client_request_id_is_kept_and_an_insane_one_replaced(
    client: AsyncTestClient[Any],
) -> None:
    sent = "mobile-7f3a:retry.2"
    kept = await client.get("/v1/nothing", headers={"X-Request-Id": sent})
    assert kept.headers["x-request-id"] == sent and kept.json()["requestId"] == sent
    for insane in ("a" * 129, "has space", 'quote"d', ""):
        got = (await client.get("/v1/nothing", headers={"X-Request-Id": insane})).headers
        assert re.fullmatch(r"[0-9a-f]{32}", got["x-request-id"]), insane


async def test_the_access_line_names_the_route_template_and_the_user() -> None:
    """A handler that authenticates (note_user) and a templated route."""
    from genstudio.entrypoints.http.access import note_user

    async def handler(scope: Message, receive: Any, send: Any) -> None:
        scope["path_template"] = "/v1/generate/{job_id:uuid}"  # what Litestar's router sets
        note_user("3f0c2b5e-0000-4000-8000-000000000001")
        logging.getLogger("genstudio.test").info("inside the request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/generate/abc", "headers": []}
    for formatter in (JsonFormatter(), TextFormatter()):
        with Lines(formatter) as lines:
            await AccessLog(handler)(scope, receive, send)  # type: ignore[arg-type]
        request_id = dict(sent[-2]["headers"])[b"x-request-id"].decode()
        inside, access = lines.text()
        assert request_id in inside  # every line of the request carries it
        if isinstance(formatter, JsonFormatter):
            line = json.loads(access)
            assert line["route"] == "/v1/generate/{job_id:uuid}"
            assert line["user_id"] == "3f0c2b5e-0000-4000-8000-000000000001"
            assert (line["status"], line["request_id"]) == (200, request_id)
        else:
            assert re.search(
                r"INFO  genstudio.access GET /v1/generate/\{job_id:uuid\} 200 ", access
            )
            assert "user_id=3f0c2b5e-0000-4000-8000-000000000001" in access
            assert f"request_id={request_id}" in access
            assert "status=" not in access  # said once, in the message
    assert REQUEST_ID.get() is None  # reset after the request


async def test_the_deadline_503_is_logged_and_carries_the_request_id(json_lines: Lines) -> None:
    async def hung(scope: Message, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "POST", "path": "/v1/generate/image", "headers": []}
    await AccessLog(Deadline(hung, 0.1))(scope, receive, send)  # type: ignore[arg-type]

    start, body = sent
    assert start["status"] == 503
    request_id = dict(start["headers"])[b"x-request-id"].decode()
    assert json.loads(body["body"])["requestId"] == request_id
    lines = json_lines.json()
    warning = next(line for line in lines if line["msg"].startswith("request deadline passed"))
    assert warning["request_id"] == request_id
    access = next(line for line in lines if line["logger"] == "genstudio.access")
    assert (access["status"], access["request_id"]) == (503, request_id)
    assert access["level"] == "warning"


def test_logs_are_text_on_a_terminal_and_json_otherwise_unless_told() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_json("auto", io.StringIO())
    assert not wants_json("auto", Tty())
    assert wants_json("json", Tty())
    assert not wants_json("text", io.StringIO())


async def test_the_docs_page_loads_everything_from_the_service_itself(
    client: AsyncTestClient[Any],
) -> None:
    page = await client.get("/schema/swagger")
    assert page.status_code == 200, page.text
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert len(refs) >= 3, page.text  # the script, the preset, the stylesheet (and the icon)
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), f"an outside address: {ref}"
        asset = await client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 100, ref
    assert (
        "http://" not in page.text.split("<body")[0]
        and "https://" not in page.text.split("<body")[0]
    )
    types = {ref.rsplit(".", 1)[-1] for ref in refs}
    assert {"js", "css"} <= types
