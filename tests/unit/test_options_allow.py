"""OPTIONS answers name every method of a path, whichever controllers share it (issue #19:
schemathesis found ``Allow`` naming one controller's methods on paths split over several)."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, patch
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.routing import App
from genstudio.entrypoints.settings import Settings


class _Reads(Controller):
    path = "/v1/me"

    @get("/")
    async def read(self) -> str:
        return "me"


class _Writes(Controller):
    path = "/v1"

    @patch("/me")
    async def change(self) -> str:
        return "changed"


class _Erasure(Controller):
    path = "/v1/me"

    @delete("/", status_code=204)
    async def erase(self) -> None:
        return None


def test_a_path_served_by_three_controllers_allows_all_their_methods() -> None:
    app = App(route_handlers=[_Reads, _Writes, _Erasure])
    with TestClient(app) as client:
        answer = client.options("/v1/me")
    assert answer.status_code == 204
    assert answer.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"


def test_every_route_of_the_app_allows_exactly_its_methods() -> None:
    app = create_app(Settings())  # built, never started: no database is opened
    routes = [r for r in app.routes if isinstance(r, HTTPRoute)]
    assert any(r.path == "/v1/training/photo-sets" for r in routes)
    for route in routes:
        handler, _ = route.route_handler_map["OPTIONS"]
        answer = handler.fn(None)  # Litestar's generated handler is synchronous
        assert isinstance(answer, Response)
        assert answer.headers["Allow"] == ", ".join(sorted(route.methods)), route.path
