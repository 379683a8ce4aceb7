"""The problem+json document (RFC 9457) every error of ours is written as: its fields and
its bytes, apart from the mapping of errors to statuses (``problems.py``), so that a
process serving no API (``genstudio classifier``) writes the same documents without
loading the API's dependencies."""

from __future__ import annotations

from typing import Any

import msgspec

from genstudio.entrypoints.logs import REQUEST_ID

PROBLEM_JSON = "application/problem+json"


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str | None = None
    field: str | None = None
    required: int | None = None
    available: int | None = None
    #: content_refused: why (``sexual``, ``hate``, ...), a code the app shows a text for
    reason: str | None = None
    #: generation_suspended: until when (ISO 8601)
    suspended_until: str | None = msgspec.field(default=None, name="suspendedUntil")
    #: the request's id (its ``X-Request-Id``): what support asks for
    request_id: str | None = msgspec.field(default=None, name="requestId")


#: seconds a client is told to wait when a backing service is down or stalled
UNAVAILABLE_RETRY_AFTER = 5


def problem_body(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    instance: str | None = None,
    field: str | None = None,
    **extra: Any,
) -> bytes:
    """The problem+json document (for those who answer without a Litestar Response)."""
    problem = Problem(
        type=f"https://genstudio.app/problems/{code.replace('_', '-')}",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        code=code,
        field=field,
        request_id=REQUEST_ID.get(),
        **extra,
    )
    return msgspec.json.encode(problem)
