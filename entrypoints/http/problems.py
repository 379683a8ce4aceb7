"""RFC 9457 problem details: every error the API returns, mapped in one place."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import psycopg
import redis.exceptions
import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from genstudio.core.model import errors
from genstudio.core.model.limits import RateLimited
from genstudio.core.model.moderation import ContentRefused, GenerationSuspended
from genstudio.core.model.safety import AuthUnavailable
from genstudio.entrypoints.http.problem_document import (
    PROBLEM_JSON,
    UNAVAILABLE_RETRY_AFTER,
    problem_body,
)
from genstudio.entrypoints.http.rate_fields import refusal_fields
from genstudio.ports.moderation import ModerationUnavailable

log = logging.getLogger("genstudio.http")


#: domain error -> (HTTP status, title)
STATUS: dict[type[errors.DomainError], tuple[int, str]] = {
    errors.Unauthorized: (401, "Unauthorized"),
    errors.Forbidden: (403, "Forbidden"),
    errors.NotFound: (404, "Not found"),
    errors.InsufficientCredits: (402, "Insufficient credits"),
    errors.IdempotencyInProgress: (409, "Request in progress"),
    errors.IdempotencyMismatch: (422, "Idempotency key reused"),
    errors.JobFinished: (409, "Job already finished"),
    errors.IllegalTransition: (409, "Conflict"),
    errors.ConcurrencyConflict: (409, "Conflict"),
    errors.AlreadyTaken: (409, "Already taken"),
    errors.InvalidInput: (422, "Invalid input"),
    errors.TooLarge: (413, "Content too large"),
    errors.PurchaseOwnedElsewhere: (409, "Purchase belongs to another account"),
    errors.InvalidPurchase: (400, "Purchase not verified"),
    errors.StoreUnavailable: (503, "Store unavailable"),
    AuthUnavailable: (503, "Sign-in service unavailable"),
    RateLimited: (429, "Too many requests"),
}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    request: Request[Any, Any, Any] | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[bytes]:
    body = problem_body(
        status,
        title,
        detail,
        code=code,
        instance=str(request.url.path) if request is not None else None,
        field=field,
        **extra,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _status_for(exc: errors.DomainError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400, "Bad request"


def domain_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, errors.DomainError)
    status, title = _status_for(exc)
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(exc, errors.InsufficientCredits):
        extra = {"required": exc.required, "available": exc.available}
    if isinstance(exc, errors.Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="genstudio"'}
    if isinstance(exc, errors.IdempotencyInProgress):
        headers = {"Retry-After": "1"}  # the first request is mid-flight: seconds at most
    if isinstance(exc, RateLimited):
        headers = refusal_fields(exc)
    if isinstance(exc, ContentRefused):
        extra = {"reason": exc.reason.value}
    if isinstance(exc, GenerationSuspended):
        extra = {"suspended_until": exc.until.isoformat()}
    field, detail = wire_field(exc.field, exc.message)
    return problem_response(
        status,
        title,
        detail,
        code=exc.code,
        request=request,
        field=field,
        headers=headers,
        **extra,
    )


_SNAKE = re.compile(r"_([a-z0-9])")
_CAMEL = re.compile(r"[A-Z]")
_WORD = re.compile(r"[a-z][A-Za-z0-9_]*")


def wire_field(field: str | None, message: str) -> tuple[str | None, str]:
    """The field at fault as the app sends it (``durationSeconds``, not the core's
    ``duration_seconds``), in ``field`` and in the message that names it: the app's
    bodies and forms are camelCase everywhere (issue #19)."""
    if field is None or not _WORD.fullmatch(field):
        return field, message  # a header (Idempotency-Key), a path, "body", ...
    camel = _SNAKE.sub(lambda m: m.group(1).upper(), field)
    snake = _CAMEL.sub(lambda m: "_" + m.group(0).lower(), camel)
    return camel, re.sub(rf"\b{re.escape(snake)}\b", camel, message)


_FIELD = re.compile(r"at `\$\.?([^`]*)`")


def validation_field(message: str) -> str | None:
    """The field msgspec names in a message like "Expected `int`, got `str` - at `$.width`"."""
    match = _FIELD.search(message)
    if match:
        return match.group(1) or None
    unknown = re.search(r"unknown field `([^`]+)`", message)
    if unknown:
        return unknown.group(1)
    missing = re.search(r"missing required field `([^`]+)`", message)
    return missing.group(1) if missing else None


def validation_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ValidationException)
    field: str | None = None
    detail = exc.detail
    if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict):
        first = exc.extra[0]
        detail = str(first.get("message") or detail)
        key = first.get("key")
        if key == "data" and detail == "'data'":  # Litestar's word for no body at all
            return _malformed_json(request, "the body is empty; send a JSON object")
        # Litestar names the whole body "data"; msgspec's message names the field
        field = validation_field(detail) if key in (None, "data") else str(key)
        if field is None and key == "data":  # the body itself: not an object
            field = "body"
    if field is None:
        named = re.search(r"parameter '([^']+)'", exc.detail)
        field = named.group(1) if named else None
    return problem_response(
        422, "Invalid input", detail, code="invalid_input", request=request, field=field
    )


def _malformed_json(request: Request[Any, Any, Any], detail: str) -> Response[bytes]:
    return problem_response(
        400, "Malformed JSON", detail, code="malformed_json", request=request, field="body"
    )


def http_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, NotAuthorizedException):
        return problem_response(
            401,
            "Unauthorized",
            exc.detail,
            code="unauthorized",
            request=request,
            headers={"WWW-Authenticate": 'Bearer realm="genstudio"'},
        )
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and (
        isinstance(exc.__cause__, SerializationException) or "JSON is malformed" in exc.detail
    ):  # the body did not decode: syntax, truncation
        return _malformed_json(request, exc.detail)
    if exc.status_code == 400 and "multipart/form-data" in exc.detail:
        return problem_response(
            400,
            "Malformed form",
            "the body is not multipart/form-data; send the fields and files as a form",
            code="malformed_form",
            request=request,
            field="body",
        )
    if exc.status_code == 413 or (
        exc.status_code == 400 and exc.detail == "Request Entity Too Large"
    ):
        # Litestar answers a form of more parts than its limit with this 400 (its
        # "FIXME (3.0)"): the body is too large, so 413, like a body over the route's size
        return problem_response(
            413,
            "Content too large",
            "the body is larger than this route accepts, or has too many parts",
            code="too_large",
            request=request,
            field="body",
        )
    if exc.status_code == 404:  # no such route: also a path id that is not a UUID
        return problem_response(404, "Not found", exc.detail, code="not_found", request=request)
    return problem_response(
        exc.status_code,
        HTTPStatus(exc.status_code).phrase,
        exc.detail,
        code=f"http_{exc.status_code}",
        request=request,
        headers=headers or None,
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal error",
        "something went wrong on our side; the request may be retried with the same Idempotency-Key",
        code="internal_error",
        request=request,
    )


def recursion_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """msgspec refuses JSON nested deeper than Python's recursion limit with a
    RecursionError: the client's body, not our bug. Any other is ours."""
    if "deserializing" in str(exc):
        return _malformed_json(request, "the JSON is nested too deeply")
    return internal_error_handler(request, exc)


#: a dependency that is down: answer 503 quickly (never hang) and let the client retry
UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
    ModerationUnavailable,  # fail-closed moderation whose classifier could not answer
)


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning(
        "dependency unavailable",
        extra={"path": request.url.path, "error": f"{type(exc).__name__}: {exc}"[:300]},
    )
    return problem_response(
        503,
        "Service unavailable",
        "a backing service is unavailable; retry shortly with the same Idempotency-Key",
        code="unavailable",
        request=request,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


EXCEPTION_HANDLERS = {
    **dict.fromkeys(UNAVAILABLE, unavailable_handler),
    errors.DomainError: domain_error_handler,
    ValidationException: validation_handler,
    RecursionError: recursion_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
