"""Rate limits at the edge: every request spends its class's budgets before its body
is read or any work is done (``core.services.limits``).

The class of a route (``core.model.limits.Operation``) is what its handler declares
in ``opt={"rate_limit": Operation.SOCIAL_WRITES}`` (``None`` exempts it), else what
its path and method say: ``/v1/webhooks/*`` webhooks; a POST to ``/v1/generate/…``
or ``/v1/training/jobs…`` a submission; another multipart body an upload; GET and
HEAD reads; anything else a write. Health probes and the API's own docs are exempt.

A request with a bearer token on a route that uses the principal has its token
verified here, once (``get_principal`` reuses the answer), so that the user's budget
is known before the body: the user's (sized by their tier, read from their profile
and remembered ``tier_cache_seconds``) and then the client address's. A refused token
spends the address's ``failed_auth`` budget; once it is spent, tokens from that
address are refused with 429 before they are even verified.

Answers carry ``RateLimit-Policy`` and ``RateLimit`` (``rate_fields``); a refusal is
``429 application/problem+json`` with ``Retry-After``. A counter store that cannot be
reached lets the request through (logged): like a wake-up, a rate limit must not
take the API down with Redis.

Multipart requests also wait for one of ``uploads_in_flight`` places before their
body is read (uvicorn stops reading a socket whose request is not consumed), so
however many uploads arrive together, a process holds a bounded number in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from genstudio.core.model.errors import Unauthorized
from genstudio.core.model.limits import Limit, Operation, RateLimited, RatePolicy, Usage
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.core.services.limits import refuse_if_spent, spend, tier_of
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.problem_document import PROBLEM_JSON, problem_body
from genstudio.entrypoints.http.rate_fields import fields, refusal_fields
from genstudio.ports.auth import Principal

log = logging.getLogger("genstudio.http")

#: the key in the ASGI scope's state where the verified principal (or the refusal)
#: is kept for ``entrypoints.http.deps.get_principal``
PRINCIPAL_STATE = "genstudio.principal"

_EXEMPT = ("/health/", "/schema")
_SUBMISSIONS = ("/v1/generate/", "/v1/training/jobs")
_TIERS_KEPT = 10_000  # users whose tier is remembered; the oldest are forgotten first


def classify(scope: Scope) -> Operation | None:
    """The operation class of a request (None: not limited)."""
    handler = scope.get("route_handler")
    opt: dict[str, Any] = getattr(handler, "opt", None) or {}
    if "rate_limit" in opt:
        declared: Operation | None = opt["rate_limit"]
        return declared
    path: str = scope["path"]
    method = str(scope.get("method", "GET"))
    if path.startswith(_EXEMPT):
        return None
    if path.startswith("/v1/webhooks/"):
        return Operation.WEBHOOKS
    if method in ("GET", "HEAD"):
        return Operation.READS
    if method == "POST" and path.startswith(_SUBMISSIONS) and not path.endswith("/cancel"):
        return Operation.SUBMISSIONS
    if _is_multipart(scope):
        return Operation.UPLOADS
    return Operation.WRITES


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value[:19].lower() == b"multipart/form-data"
    return False


def _uses_principal(handler: Any) -> bool:
    signature = getattr(handler, "parsed_fn_signature", None)
    return signature is not None and "principal" in signature.parameters


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


class RateLimits:
    """The ASGI middleware (app level: it runs after routing, before the handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tiers: dict[uuid.UUID, tuple[SubscriptionTier, float]] = {}
        # addresses with a refused token in this process, until when (monotonic): only
        # they are checked against the failed-authentication budget before verifying,
        # a Redis round trip the other requests skip (another process's refusals reach
        # this one's count at its first refusal of the address: one verification more)
        self._failed: dict[str, float] = {}
        self._uploads: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        # an app built without a runtime (tests of the bare HTTP layer) has nothing to count in
        container: AppContainer | None = getattr(scope["litestar_app"].state, "container", None)
        settings = container.settings().rate if container is not None else None
        operation = classify(scope) if settings is not None and settings.enabled else None
        if operation is None or container is None or settings is None:
            await self.app(scope, receive, send)
            return
        try:
            spent = await self._spend(scope, container, operation)
        except RateLimited as exc:
            await _refuse(scope, send, exc)
            return
        if spent:
            send = _with_fields(send, fields(spent))
        if operation in (Operation.UPLOADS, Operation.SUBMISSIONS) and _is_multipart(scope):
            if self._uploads is None:
                self._uploads = asyncio.Semaphore(settings.uploads_in_flight)
            async with self._uploads:
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _spend(
        self, scope: Scope, container: AppContainer, operation: Operation
    ) -> list[tuple[Limit, Usage]]:
        policy = container.settings().rate.policy
        counter = container.rate_counter()
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        try:
            principal = await self._principal(scope, container, ip)
            tier: SubscriptionTier | None = None
            if principal is not None:
                tier = SubscriptionTier.FREE
                if policy.needs_tier(operation):
                    tier = await self._tier(container, principal.user_id)
            return await spend(
                counter,
                policy,
                operation,
                ip=ip,
                user_id=principal.user_id if principal is not None else None,
                tier=tier,
            )
        except (ConnectionError, TimeoutError, OSError) as exc:
            log.warning("rate limits skipped: counter unavailable", extra={"error": str(exc)})
            return []

    async def _principal(self, scope: Scope, container: AppContainer, ip: str) -> Principal | None:
        """The request's verified user, when it presents a token to a route that uses
        one; a refused token spends the address's failed-authentication budget."""
        token = _bearer(scope)
        if token is None or not _uses_principal(scope.get("route_handler")):
            return None
        policy = container.settings().rate.policy
        counter = container.rate_counter()
        failed_until = self._failed.get(ip)
        if failed_until is not None:
            if failed_until > time.monotonic():
                await refuse_if_spent(counter, policy, Operation.FAILED_AUTH, ip=ip)
            else:
                del self._failed[ip]
        state = scope.setdefault("state", {})
        try:
            principal: Principal = await container.verifier().verify(token)
        except Unauthorized as exc:
            state[PRINCIPAL_STATE] = exc  # the handler answers 401 without verifying again
            self._remember_failure(ip, policy)
            await spend(counter, policy, Operation.FAILED_AUTH, ip=ip)
            return None
        state[PRINCIPAL_STATE] = principal
        return principal

    def _remember_failure(self, ip: str, policy: RatePolicy) -> None:
        budget = policy.ips.get(Operation.FAILED_AUTH)
        if budget is None:
            return
        if len(self._failed) >= _TIERS_KEPT:
            self._failed.pop(next(iter(self._failed)))
        self._failed[ip] = time.monotonic() + budget.seconds

    async def _tier(self, container: AppContainer, user_id: uuid.UUID) -> SubscriptionTier:
        now = time.monotonic()
        kept = self._tiers.get(user_id)
        if kept is not None and kept[1] > now:
            return kept[0]
        tier = await tier_of(container.uow_factory(), user_id)
        ttl = container.settings().rate.tier_cache_seconds
        if ttl > 0:
            if len(self._tiers) >= _TIERS_KEPT:
                self._tiers.pop(next(iter(self._tiers)))
            self._tiers.pop(user_id, None)
            self._tiers[user_id] = (tier, now + ttl)
        return tier


def _with_fields(send: Send, extra: dict[str, str]) -> Send:
    encoded = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *encoded]
        await send(message)

    return sending


async def _refuse(scope: Scope, send: Send, exc: RateLimited) -> None:
    body = problem_body(
        429,
        "Too many requests",
        exc.message,
        code=exc.code,
        instance=scope["path"],
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in refusal_fields(exc).items()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
