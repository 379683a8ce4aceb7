"""The Modal app's web endpoints served locally: the same endpoint functions
(``gpu_worker.web``) over Modal's call semantics acted out in threads of this process.

``LocalCalls`` plays ``Function.spawn`` and ``FunctionCall``: ``get`` raises what
``FunctionCall.get(timeout=0)`` raises (``TimeoutError`` while the call runs, the
function's own exception, ``modal.exception.OutputExpiredError`` once a result
expired, ``FunctionTimeoutError`` past the function's time limit, ``NotFoundError``
for an unknown id). ``LocalRecords`` plays the ``modal.Dict``; ``ProxyAuth`` plays
Modal's proxy auth in front of the app (401 without the right ``Modal-Key`` and
``Modal-Secret``). The GPU function is ``gpu_worker.calls.run_call``, as on Modal.

    python -m gpu_worker.local --port 8000 --token-id wk-local --token-secret ws-local

serves the preview engine (``--engine diffusers`` on a GPU machine) at
http://127.0.0.1:8000; point genstudio's ``MODAL_BASE_URL`` and ``MODAL_TOKEN_*`` at it.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from modal.exception import FunctionTimeoutError, NotFoundError, OutputExpiredError, RemoteError

from gpu_worker.calls import run_call
from gpu_worker.web import create_app
from gpu_worker.worker import Worker, worker_from_env

GpuFunction = Callable[[dict[str, Any], str, threading.Event], Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Call:
    id: str
    job: dict[str, Any]
    queue_seconds: float
    timeout: float
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float | None = None
    finished: float | None = None
    output: Any = None
    error: BaseException | None = None
    trace: TracebackType | None = None
    timed_out: bool = False


class LocalCalls:
    """The GPU function's calls, each in a thread. ``queue_seconds``: how long a new
    call waits for a container; ``timeout``: the function's time limit;
    ``result_ttl``: how long a result stays readable (None: for ever). All three
    may be changed at any time; a call keeps the queue time and limit it started with.
    """

    def __init__(
        self,
        function: GpuFunction,
        *,
        queue_seconds: float = 0.0,
        timeout: float = 3600.0,
        result_ttl: float | None = None,
    ) -> None:
        self.function = function
        self.queue_seconds = queue_seconds
        self.timeout = timeout
        self.result_ttl = result_ttl
        self.calls: dict[str, _Call] = {}
        self._lock = threading.Lock()

    async def spawn(self, job: dict[str, Any]) -> str:
        call = _Call(
            id=f"fc-{uuid.uuid4().hex[:26].upper()}",
            job=job,
            queue_seconds=self.queue_seconds,
            timeout=self.timeout,
        )
        with self._lock:
            self.calls[call.id] = call
        threading.Thread(target=self._run, args=(call,), daemon=True, name=call.id).start()
        return call.id

    def _run(self, call: _Call) -> None:
        if call.cancel.wait(call.queue_seconds):
            return  # cancelled while it waited
        call.started = time.monotonic()
        # Modal ends a call at its time limit whoever is looking
        limit = threading.Timer(call.timeout, self._past_limit, args=(call,))
        limit.daemon = True
        limit.start()
        try:
            output = self.function(call.job, call.id, call.cancel)
        except BaseException as exc:  # what the function raised is what get raises
            with self._lock:
                call.error, call.trace = exc, exc.__traceback__
        else:
            with self._lock:
                call.output = output
        finally:
            limit.cancel()
            with self._lock:
                call.finished = time.monotonic()

    def _past_limit(self, call: _Call) -> None:
        with self._lock:
            if call.finished is None and not call.timed_out:
                call.timed_out = True
                call.cancel.set()  # Modal stops the input; the engine stops at its next check

    async def get(self, call_id: str) -> Any:
        call = self.calls.get(call_id)
        if call is None:
            raise NotFoundError(f"no function call {call_id}")
        if call.timed_out:
            raise FunctionTimeoutError(f"the call ran past its {call.timeout:g}s limit")
        if call.finished is None:
            if call.cancel.is_set():
                raise RemoteError("the call was cancelled")
            raise TimeoutError()
        if self.result_ttl is not None and time.monotonic() - call.finished >= self.result_ttl:
            raise OutputExpiredError()
        if call.error is not None:
            raise call.error.with_traceback(call.trace)
        return call.output

    async def cancel(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.cancel.set()

    async def stats(self) -> tuple[int, int]:
        with self._lock:
            calls = list(self.calls.values())
        live = [c for c in calls if not c.cancel.is_set() and c.finished is None]
        queued = sum(1 for c in live if c.started is None)
        running = sum(1 for c in live if c.started is not None and not c.timed_out)
        return queued, running

    def cancel_all(self) -> None:
        for call in list(self.calls.values()):
            call.cancel.set()


class LocalRecords:
    """A modal.Dict in memory: the blocking face (the GPU function's) and ``aio``,
    the asynchronous face the endpoints use."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.aio = _AsyncRecords(self)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return json.loads(self.data[key]) if key in self.data else default

    def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> bool:
        encoded = json.dumps(value)  # stored as a copy, as Modal stores a serialised value
        with self._lock:
            if skip_if_exists and key in self.data:
                return False
            self.data[key] = encoded
            return True


class _AsyncRecords:
    def __init__(self, records: LocalRecords) -> None:
        self.records = records

    async def get(self, key: str) -> Any:
        return self.records.get(key)

    async def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> None:
        self.records.put(key, value, skip_if_exists=skip_if_exists)


class ProxyAuth:
    """Modal's ``requires_proxy_auth``: a request without the workspace's proxy auth
    token in ``Modal-Key`` and ``Modal-Secret`` gets 401 and never reaches the app."""

    def __init__(self, app: Asgi, *, token_id: str, token_secret: str) -> None:
        self.app = app
        self.token_id = token_id.encode()
        self.token_secret = token_secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            key, secret = headers.get(b"modal-key", b""), headers.get(b"modal-secret", b"")
            if not (
                hmac.compare_digest(key, self.token_id)
                and hmac.compare_digest(secret, self.token_secret)
            ):
                body = b'{"detail":"missing or invalid proxy auth token"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@dataclass
class LocalModal:
    """The served app and what stands for Modal behind it."""

    app: Asgi
    calls: LocalCalls
    records: LocalRecords


def local_modal(worker: Worker, *, token_id: str, token_secret: str) -> LocalModal:
    """The Modal app's endpoints over ``worker``, behind proxy auth, as on Modal."""
    records = LocalRecords()

    def function(job: dict[str, Any], call_id: str, cancelled: threading.Event) -> Any:
        return run_call(job, call_id=call_id, records=records, worker=worker, cancelled=cancelled)

    calls = LocalCalls(function)
    app = ProxyAuth(
        create_app(calls, records.aio, detail=f"local {worker.engine.name} worker"),
        token_id=token_id,
        token_secret=token_secret,
    )
    return LocalModal(app=app, calls=calls, records=records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token-id", default=os.environ.get("MODAL_TOKEN_ID", "wk-local"))
    parser.add_argument("--token-secret", default=os.environ.get("MODAL_TOKEN_SECRET", "ws-local"))
    parser.add_argument("--engine", choices=["preview", "diffusers"], default="preview")
    args = parser.parse_args(argv)
    import uvicorn

    worker = worker_from_env({**os.environ, "GPU_WORKER_ENGINE": args.engine})
    served = local_modal(worker, token_id=args.token_id, token_secret=args.token_secret)
    uvicorn.run(served.app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
