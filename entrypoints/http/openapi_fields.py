"""What the social, safety and notification bodies take, written into the OpenAPI
document (issue #19: schemathesis sent what the document allowed and got 422s).

The rules are the core's (``core.model.social``, ``core.model.safety``,
``core.model.notifications``), read from the same constants:

- enumerations (visibility, report reasons, actions, statuses, content filters) are
  typed as the core's enums on the request Structs, so Litestar lists their values
  and msgspec refuses others; what is not an enum type is listed here (languages), or
  written as a pattern that matches its names and nothing else (time zones);
- free text (captions, comments, bios, display names, report details, notes) has at
  most its limit of characters and no control character (C0, C1 but tab and newline
  where newlines are allowed) or bidirectional override, as ``check_text`` refuses;
- a username is 3-30 of ``A-Z a-z 0-9 _ .``, surrounding white space aside;
- marking notifications read takes either ``all: true`` or a list of ``ids``;
- the notification channels are keyed by the known categories and channels;
- a share page takes any query parameters (a link picks up ``utm_source``,
  ``fbclid``, ... on its way): a free-form query object, which the unknown-query
  check (``query.py``) leaves alone.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPI, OpenAPIFormat, OpenAPIType, Parameter, Schema

from genstudio.core.model import notifications, safety, social


def _escape(code: int) -> str:
    """A code point in a character class: ``\\uXXXX`` in the BMP (JSON Schema's
    ECMA 262 and Python's ``re`` read it alike), the character itself beyond."""
    return f"\\u{code:04x}" if code < 0x10000 else chr(code)


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for code in sorted(set(codes)):
        if found and found[-1][1] == code - 1:
            found[-1] = (found[-1][0], code)
        else:
            found.append((code, code))
    return found


def _class_body(ranges: list[tuple[int, int]]) -> str:
    return "".join(
        _escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in sorted(ranges)
    )


def _refused(*, newlines: bool) -> list[tuple[int, int]]:
    """What ``core.model.social.check_text`` refuses: control characters (but tab and
    newline where newlines are allowed) and the bidirectional overrides. (It refuses
    lone surrogates too, which no JSON text msgspec decodes holds, and no validator's
    regular expression engine takes in a class.)"""
    controls = [c for c in [*range(0x20), *range(0x7F, 0xA0)] if not (newlines and c in (9, 10))]
    return [*_ranges(controls), *_ranges([ord(c) for c in social.BIDI_OVERRIDES])]


def printable(*, newlines: bool = True) -> str:
    """A text of characters ``check_text`` takes (any number, none at all too)."""
    return f"^[^{_class_body(_refused(newlines=newlines))}]*$"


@cache
def _space() -> str:
    """What ``str.strip()`` removes, as a character class's body."""
    return _class_body(_ranges([c for c in range(sys.maxunicode + 1) if chr(c).isspace()]))


def written(*, newlines: bool = True) -> str:
    """As :func:`printable`, with something besides white space (a comment)."""
    refused = _class_body(_refused(newlines=newlines))
    return f"^[^{refused}]*[^{refused}{_space()}][^{refused}]*$"


def username() -> str:
    """``check_username``: 3-30 of ``[A-Za-z0-9_.]`` (folded to lower case), with
    white space around it (stripped)."""
    return f"^[{_space()}]*[A-Za-z0-9_.]{{3,30}}[{_space()}]*$"


def time_zone() -> str:
    """``check_time_zone``: one of the names of the system's time zone database, as a
    pattern (``^(?:Africa/(?:Abidjan|...)|...|UTC|...)$``) rather than an enum: the
    same set, without 600 values for a client or a fuzzer to go through one by one."""
    areas: dict[str, list[str]] = {}
    for name in sorted(notifications.time_zones()):
        area, _, rest = name.partition("/")
        areas.setdefault(area if rest else "", []).append(rest or area)
    choices = [
        f"{_literal(area)}/(?:{'|'.join(_literal(n) for n in names)})"
        if area
        else "|".join(_literal(n) for n in names)
        for area, names in sorted(areas.items())
    ]
    return f"^(?:{'|'.join(choices)})$"


def _literal(text: str) -> str:
    """``text`` matched as written (zone names hold letters, digits, ``/ _ - + .``)."""
    return text.replace(".", "\\.").replace("+", "\\+")


def _text(limit: int, *, newlines: bool = True) -> dict[str, Any]:
    return {"maxLength": limit, "pattern": printable(newlines=newlines)}


@cache
def field_limits() -> dict[str, dict[str, dict[str, Any]]]:
    """Request Struct name -> camelCase field -> JSON Schema keywords (what
    ``openapi.LIMITS`` holds for the generation bodies)."""
    return {
        "ProfilePatchRequest": {
            "username": {"pattern": username()},
            "displayName": _text(social.MAX_DISPLAY_NAME, newlines=False),
            "bio": _text(social.MAX_BIO),
        },
        "ProfilePreferencesPatch": {"language": {"enum": sorted(social.LANGUAGES)}},
        "PublishRequest": {"caption": _text(social.MAX_CAPTION)},
        "EditPostRequest": {"caption": _text(social.MAX_CAPTION)},
        "CommentRequest": {
            "body": {"minLength": 1, "maxLength": social.MAX_COMMENT, "pattern": written()}
        },
        "ReportRequest": {"details": _text(safety.MAX_DETAILS)},
        "ResolveRequest": {"note": _text(safety.MAX_NOTE)},
        "NotificationPreferencesPatch": {
            "timeZone": {"pattern": time_zone()},
            "language": {"enum": list(notifications.LANGUAGES)},
        },
        "RegisterTokenRequest": {"appVersion": {"minLength": 1, "maxLength": 50}},
    }


def complete(document: OpenAPI) -> None:
    """What per-field keywords cannot say: which of two fields a body takes, the keys
    of a map, a free-form query."""
    schemas = document.components.schemas or {}
    mark_read = schemas.get("MarkReadRequest")
    if mark_read is not None:
        # the handler: ``all == (ids is not None)`` is refused
        mark_read.one_of = [
            Schema(
                required=["all"],
                properties={"all": Schema(const=True), "ids": Schema(type=OpenAPIType.NULL)},
            ),
            Schema(
                required=["ids"],
                properties={
                    "all": Schema(const=False),
                    "ids": Schema(
                        type=OpenAPIType.ARRAY,
                        items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
                    ),
                },
            ),
        ]
    patch = schemas.get("NotificationPreferencesPatch")
    channels = (patch.properties or {}).get("channels") if patch is not None else None
    for variant in getattr(channels, "one_of", None) or ():
        if getattr(variant, "type", None) == OpenAPIType.OBJECT:
            variant.property_names = Schema(enum=[c.value for c in notifications.Category])
            inner = variant.additional_properties
            if isinstance(inner, Schema):
                inner.property_names = Schema(enum=[c.value for c in notifications.Channel])
    page = (document.paths or {}).get("/p/{share_id}")
    if page is not None and page.get is not None:
        page.get.parameters = [
            *(page.get.parameters or ()),
            Parameter(
                name="tracking",
                param_in=ParamType.QUERY,
                required=False,
                style="form",
                explode=True,
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    additional_properties=Schema(type=OpenAPIType.STRING),
                ),
                description="Whatever a shared link picked up on its way "
                "(`utm_source`, `fbclid`, ...): ignored",
            ),
        ]
