"""Query parameters a route does not take are refused (issue #19).

Litestar hands a handler the query parameters it declares and drops the rest, so
``GET /v1/me/credits?limt=5`` used to answer a full page as if the misspelt limit
were not there, and the OpenAPI document, which lists each operation's parameters,
did not describe what the service accepted. Each documented route now takes exactly
the query parameters its operation lists: :func:`record` reads them from the built
document onto the route handlers, and :class:`UnknownQuery` (after routing, before
any body is read) answers a request naming another one ``422 invalid_input`` with
the parameter in ``field``.

A route that wants parameters it cannot name (a share page's link picks up
``utm_source`` or ``fbclid`` on its way through other apps) documents a free-form
query object (``style: form, explode: true``, ``additionalProperties``), and is not
checked.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.enums import ParamType, ScopeType
from litestar.openapi.spec import OpenAPI, OpenAPIType, Operation, Parameter
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from genstudio.entrypoints.http.problem_document import PROBLEM_JSON, problem_body

#: the key of a route handler's ``opt`` that holds the query parameters it takes
QUERY_NAMES = "query_parameters"
#: an unknown name is quoted in the answer up to this many characters
_QUOTED = 80


def record(app: Litestar, document: OpenAPI) -> None:
    """Put on each documented route handler the query parameters its operation lists
    (``None``: a free-form query, not checked)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = (document.paths or {}).get(route.path_format)
        if item is None:
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation: Operation | None = getattr(item, str(method).lower(), None)
                if operation is not None:
                    handler.opt[QUERY_NAMES] = query_names(operation)


def query_names(operation: Operation) -> frozenset[str] | None:
    """The names of the operation's query parameters; None when one of them is a
    free-form object (any name is taken)."""
    names: set[str] = set()
    for parameter in operation.parameters or ():
        if not isinstance(parameter, Parameter) or parameter.param_in != ParamType.QUERY:
            continue
        if _free_form(parameter):
            return None
        names.add(parameter.name)
    return frozenset(names)


def _free_form(parameter: Parameter) -> bool:
    schema: Any = parameter.schema
    if isinstance(schema, dict):
        return schema.get("type") == "object" and bool(schema.get("additionalProperties"))
    return getattr(schema, "type", None) == OpenAPIType.OBJECT and bool(
        getattr(schema, "additional_properties", None)
    )


def unknown_name(scope: Scope) -> str | None:
    """The first query parameter the request's route does not take, if any."""
    handler = scope.get("route_handler")
    known: frozenset[str] | None = (getattr(handler, "opt", None) or {}).get(QUERY_NAMES)
    if known is None or not scope.get("query_string"):
        return None
    for name in ASGIConnection[Any, Any, Any, Any](scope).query_params:
        if name not in known:
            return str(name)
    return None


class UnknownQuery:
    """The ASGI middleware (app level: it runs after routing, before the handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            name = unknown_name(scope)
            if name is not None:
                await _refuse(scope, send, name)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, name: str) -> None:
    handler = scope.get("route_handler")
    known = sorted((getattr(handler, "opt", None) or {}).get(QUERY_NAMES) or ())
    takes = f"this route takes {', '.join(known)}" if known else "this route takes none"
    quoted = name if len(name) <= _QUOTED else name[:_QUOTED] + "..."
    body = problem_body(
        422,
        "Invalid input",
        f"unknown query parameter {quoted!r}; {takes}",
        code="invalid_input",
        instance=scope["path"],
        field=quoted,
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
