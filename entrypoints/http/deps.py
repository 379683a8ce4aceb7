"""Small typed bridges from Litestar's dependency injection to the container."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from core.model.errors import Unauthorized
from entrypoints.http.access import note_user
from entrypoints.runtime import Runtime
from ports.auth import Principal


def get_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


async def get_principal(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> Principal:
    # depending on ``runtime`` (not on ``state``) puts the two in separate batches, so
    # Litestar resolves them one after the other instead of in an anyio task group
    # per request
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    verifier = runtime.container.verifier()
    principal: Principal = await verifier.verify(token.strip())
    note_user(principal.user_id)  # for the request's access line
    return principal


#: handler parameter types: the names match the app's ``dependencies`` keys
RuntimeDep = NamedDependency[Runtime]
PrincipalDep = NamedDependency[Principal]
