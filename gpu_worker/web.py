"""The four web endpoints of the Modal app (docs/providers.md §3), as one ASGI app.

    POST /submit            §1 input -> 200 {"call_id"}; 422 {"detail"} for a refused input
    GET  /result/{call_id}  202 pending | 200 completed / failed / cancelled | 404 | 410
    POST /cancel/{call_id}  200 {"cancelled": true|false} | 404
    GET  /health            200 {"healthy", "queued", "running", "detail"}

The app speaks to Modal through two small faces: ``Calls`` (``Function.spawn``,
``FunctionCall.from_id(...).get(timeout=0)`` / ``.cancel()``, the function's current
stats) and ``Records`` (a ``modal.Dict``: each call's progress, and its cancellation).
On Modal they are ``gpu_worker.modal_app``'s; served locally (tests, trials) they are
``gpu_worker.local``'s, which raise the same ``modal.exception`` types, so these
endpoint functions are the ones deployed.

Proxy auth (``Modal-Key`` / ``Modal-Secret``) is Modal's, in front of the app
(``requires_proxy_auth=True``); ``gpu_worker.local.ProxyAuth`` acts it out locally.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from modal.exception import FunctionTimeoutError, NotFoundError, OutputExpiredError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gpu_worker.calls import cancel_key
from gpu_worker.contract import BadInput, ContentPolicyError, JobCancelled, parse_job

log = logging.getLogger("gpu_worker.web")


class Calls(Protocol):
    async def spawn(self, job: dict[str, Any]) -> str:
        """Start the GPU function on ``job``; its call id."""
        ...

    async def get(self, call_id: str) -> Any:
        """The call's output now. Raises ``TimeoutError`` while it runs, the
        function's exception if it raised, ``modal.exception.OutputExpiredError``,
        ``FunctionTimeoutError``, ``NotFoundError``."""
        ...

    async def cancel(self, call_id: str) -> None: ...

    async def stats(self) -> tuple[int, int]:
        """(inputs waiting, containers running) of the GPU function."""
        ...


class Records(Protocol):
    """A key-value store shared by the endpoints and the GPU function (modal.Dict)."""

    async def get(self, key: str) -> Any: ...

    async def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> None: ...


def create_app(
    calls: Calls, records: Records, *, detail: str = "genstudio GPU worker"
) -> Starlette:
    """The endpoints over ``calls`` and ``records``."""

    async def submit(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "the body is not JSON"}, status_code=422)
        try:
            parse_job(body)
        except BadInput as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        call_id = await calls.spawn(body)
        # the function may have written its progress already: keep it
        await records.put(call_id, {"started": False}, skip_if_exists=True)
        return JSONResponse({"call_id": call_id})

    async def result(request: Request) -> JSONResponse:
        call_id = request.path_params["call_id"]
        record = await records.get(call_id)
        if record is None:
            return JSONResponse({"detail": "no such call"}, status_code=404)
        if await records.get(cancel_key(call_id)):
            return JSONResponse({"status": "cancelled"})
        try:
            output = await calls.get(call_id)
        except TimeoutError:
            return JSONResponse(_pending(record), status_code=202)
        except OutputExpiredError:
            return JSONResponse({"detail": "the result of this call has expired"}, status_code=410)
        except NotFoundError:
            return JSONResponse({"detail": "no such call"}, status_code=404)
        except FunctionTimeoutError:
            return _failed("the GPU function ran past its time limit", "timeout")
        except ContentPolicyError as exc:
            return _failed(str(exc) or "the content was refused", "content")
        except JobCancelled:
            return JSONResponse({"status": "cancelled"})
        except BadInput as exc:  # refused by the engine (a model, a duration it cannot do)
            return _failed(f"the GPU worker refused the input: {exc}", "infrastructure")
        except Exception as exc:
            log.warning("call %s failed: %s: %s", call_id, type(exc).__name__, exc)
            return _failed(f"the GPU worker failed ({type(exc).__name__})", "infrastructure")
        return JSONResponse({"status": "completed", "output": output})

    async def cancel(request: Request) -> JSONResponse:
        call_id = request.path_params["call_id"]
        if await records.get(call_id) is None:
            return JSONResponse({"cancelled": False, "detail": "no such call"}, status_code=404)
        try:
            await calls.get(call_id)
        except TimeoutError:  # still running: cancel it
            await records.put(cancel_key(call_id), True)
            await calls.cancel(call_id)
            return JSONResponse({"cancelled": True})
        except Exception:  # finished one way or another: nothing to cancel
            pass
        return JSONResponse({"cancelled": False})

    async def health(request: Request) -> JSONResponse:
        try:
            queued, running = await calls.stats()
        except Exception as exc:
            return JSONResponse(
                {"healthy": False, "detail": f"stats unavailable: {type(exc).__name__}"},
                status_code=503,
            )
        return JSONResponse(
            {"healthy": True, "queued": queued, "running": running, "detail": detail}
        )

    return Starlette(
        routes=[
            Route("/submit", submit, methods=["POST"]),
            Route("/result/{call_id}", result, methods=["GET"]),
            Route("/cancel/{call_id}", cancel, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def _pending(record: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "pending", "started": False}
    if isinstance(record, dict):
        body["started"] = record.get("started") is True
        for key in ("progress", "step", "total"):
            if isinstance(record.get(key), int):
                body[key] = record[key]
    return body


def _failed(error: str, error_type: str) -> JSONResponse:
    return JSONResponse({"status": "failed", "error": error, "error_type": error_type})
