"""The problem+json mapping of entrypoints/http/problems.py, on a bare Litestar app."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient

from genstudio.core.model.errors import IdempotencyInProgress
from genstudio.entrypoints.http.problems import EXCEPTION_HANDLERS


@get("/busy")
async def busy() -> None:
    raise IdempotencyInProgress("a request with this Idempotency-Key is being processed")


def test_a_request_in_progress_tells_the_client_when_to_retry() -> None:
    app = Litestar([busy], exception_handlers=EXCEPTION_HANDLERS)  # type: ignore[arg-type]
    with TestClient(app) as client:
        response = client.get("/busy")
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "idempotency_in_progress"
