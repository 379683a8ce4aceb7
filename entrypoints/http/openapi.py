"""The OpenAPI document, completed in one place (issues #19 and #20).

Litestar infers each operation from its handler; what it cannot see is declared here,
for every route at once, so that a new route is documented the same way without its
controller repeating it:

- ``operationId``: stable camelCase names the typed client's functions are called by
  (``generateImage``, ``getJob``), from :data:`OPERATION_IDS`, else the handler's name;
- the problem+json answers a route can really give (:func:`problem_statuses`): 401 where
  the handler takes the principal, 429 where the rate limits count it, 400/413/422 where
  it reads a body, 404 where its path names something, 431, 503 and 422 (a query
  parameter the route does not take) everywhere, and what a use case adds
  (:data:`EXTRA_PROBLEMS`: 402 for what holds credits, 409 for keys and finished
  jobs, ...), all as the shared ``Problem`` schema;
- bodies Litestar sees as bytes (a submission's 202 is the job, :data:`BODIES`) and the
  parts of multipart forms (:data:`FORMS`);
- ``security: []`` on routes that take no token (health, webhooks, signed media),
  while the bearer scheme stays the document's default.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, get_args

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
)
from litestar.routes import HTTPRoute
from litestar.types import Method

from genstudio.core.model.job_params import (
    MAX_LORA_SCALE,
    MAX_PROMPT,
    MAX_SIDE,
    MIN_LORA_SCALE,
    MIN_SIDE,
)
from genstudio.core.model.notifications import _EXPO_TOKEN, Platform
from genstudio.entrypoints.http.generation.schemas import JobResponse
from genstudio.entrypoints.http.openapi_fields import complete as complete_fields
from genstudio.entrypoints.http.openapi_fields import field_limits
from genstudio.entrypoints.http.problem_document import PROBLEM_JSON, Problem
from genstudio.entrypoints.http.training.jobs_schemas import TrainingResponse

#: "METHOD /path" -> operationId, where the handler's own name says too little
OPERATION_IDS: dict[str, str] = {
    "GET /v1/me": "getMe",
    "GET /v1/me/credits": "listCredits",
    "GET /v1/models": "listModels",
    "GET /v1/models/mine": "listMyModels",
    "GET /v1/admin/queues": "getQueues",
    "GET /v1/admin/dead-letters": "listDeadLetters",
    "POST /v1/admin/jobs/{job_id}/rerun": "rerunJob",
    "POST /v1/generate/image": "generateImage",
    "POST /v1/generate/edit": "generateEdit",
    "POST /v1/generate/video": "generateVideo",
    "GET /v1/generate/{job_id}": "getJob",
    "GET /v1/generate/{job_id}/events": "listJobEvents",
    "POST /v1/generate/{job_id}/cancel": "cancelJob",
    "GET /health/live": "getLiveness",
    "GET /health/ready": "getReadiness",
    "GET /media/{key}": "getMedia",
    "HEAD /media/{key}": "headMedia",
    "GET /v1/products": "listProducts",
    "GET /v1/subscription": "getSubscription",
    "POST /v1/purchases/apple": "redeemApplePurchase",
    "POST /v1/purchases/google": "redeemGooglePurchase",
    "POST /v1/webhooks/apple": "appleWebhook",
    "POST /v1/webhooks/google": "googleWebhook",
    "POST /v1/webhooks/runpod": "runpodWebhook",
    "GET /v1/training/photo-sets": "listPhotoSets",
    "POST /v1/training/photo-sets": "createPhotoSet",
    "GET /v1/training/photo-sets/{set_id}": "getPhotoSet",
    "DELETE /v1/training/photo-sets/{set_id}": "deletePhotoSet",
    "POST /v1/training/photo-sets/{set_id}/photos": "addTrainingPhoto",
    "DELETE /v1/training/photo-sets/{set_id}/photos/{photo_id}": "deleteTrainingPhoto",
    "POST /v1/training": "startTraining",
    "GET /v1/training/{job_id}": "getTraining",
    "GET /v1/training/{job_id}/events": "listTrainingEvents",
    "GET /v1/training/models": "listTrainedModels",
    "PATCH /v1/training/models/{model_id}": "renameTrainedModel",
    "DELETE /v1/training/models/{model_id}": "deleteTrainedModel",
    "GET /v1/me/notification-preferences": "getNotificationPreferences",
    "PATCH /v1/me/notification-preferences": "updateNotificationPreferences",
    "GET /v1/notifications": "listNotifications",
    "GET /v1/notifications/unread-count": "getUnreadCount",
    "POST /v1/notifications/read": "markNotificationsRead",
    "POST /v1/push-tokens": "registerPushToken",
    "DELETE /v1/push-tokens/{token}": "deletePushToken",
}

#: what a route's use case adds to the rules of :func:`problem_statuses`
EXTRA_PROBLEMS: dict[str, frozenset[int]] = {
    # holds credits (402); Idempotency-Key in flight (409); another user's loraId (404);
    # generation suspended by moderation strikes (403)
    "generateImage": frozenset({402, 403, 404, 409}),
    "generateEdit": frozenset({402, 403, 409}),
    "generateVideo": frozenset({402, 403, 409}),
    "startTraining": frozenset({402, 404, 409}),
    "rerunJob": frozenset({402}),
    "cancelJob": frozenset({409}),  # job_finished
    # the transaction belongs to another account; the store did not answer (503)
    "redeemApplePurchase": frozenset({409}),
    "redeemGooglePurchase": frozenset({409}),
    "renameTrainedModel": frozenset({409}),
    # a signed link that is invalid or expired (403), or not served here (404)
    "getMedia": frozenset({403, 404}),
    "headMedia": frozenset({403, 404}),
    # the webhooks' own credentials: a signature or a secret that does not verify
    "appleWebhook": frozenset({400, 401}),
    "googleWebhook": frozenset({401}),
    "runpodWebhook": frozenset({401, 404}),
    # social writes: a suspended account (403); another's or no asset (404), an asset
    # published already or a username taken (409); an open report of mine on the target
    # or a report closed already (409)
    "publish": frozenset({403, 404, 409}),
    "comment": frozenset({403}),
    "like": frozenset({403}),
    "editProfile": frozenset({409}),
    "report": frozenset({404, 409}),
    "resolve": frozenset({409}),
}

#: what each problem status means, for the document's readers
MEANING: dict[int, str] = {
    400: "Malformed body (`malformed_json`, `malformed_form`) or an unverifiable purchase",
    401: "Missing, malformed, forged or expired token (`unauthorized`)",
    402: "The balance does not cover the price (`insufficient_credits`)",
    403: "Not allowed (`forbidden`): an operations route without a service-role token;"
    " generation suspended after repeated moderation refusals (`generation_suspended`)",
    404: "No such resource, or another user's (`not_found`)",
    409: "A request with this Idempotency-Key is in flight, or the state forbids it",
    413: "The body is larger than this route accepts, or has too many parts (`too_large`)",
    416: "The byte range is past the end of the object",
    422: "A field is wrong, or a query parameter the route does not take (`invalid_input`);"
    " `field` names it",
    429: "A rate budget is spent (`rate_limited`): retry after `Retry-After` seconds",
    431: "The request line and headers exceed 64 KiB or 100 fields (`headers_too_large`)",
    503: "A backing service is down or stalled (`unavailable`): retry after `Retry-After`",
}

#: bodies Litestar sees only as bytes: the schema of what they hold
BODIES: dict[str, tuple[int, type[Any], str]] = {
    "generateImage": (202, JobResponse, "The job, queued (a replay: the first answer)"),
    "generateEdit": (202, JobResponse, "The job, queued (a replay: the first answer)"),
    "generateVideo": (202, JobResponse, "The job, queued (a replay: the first answer)"),
    "startTraining": (202, TrainingResponse, "The training, queued (a replay: the first answer)"),
}

#: the media route's own answers: the object, one byte range of it, a range past its end
_MEDIA: dict[int, ResponseSpec] = {
    200: ResponseSpec(bytes, description="The object", media_type="*/*", generate_examples=False),
    206: ResponseSpec(
        bytes,
        description="One byte range (Content-Range)",
        media_type="*/*",
        generate_examples=False,
    ),
    416: ResponseSpec(None, description="The range is past the end (Content-Range: bytes */size)"),
}
EXTRA_RESPONSES: dict[str, dict[int, ResponseSpec]] = {"getMedia": _MEDIA, "headMedia": _MEDIA}
#: error statuses a route answers with a document of its own besides the problem (the
#: middleware's, e.g. the request deadline's 503): media type and schema name
NOT_PROBLEMS: dict[str, dict[int, tuple[str, str]]] = {
    "getReadiness": {503: ("application/json", "Health")},  # which check is down
}

#: field limits the core enforces (core/model/job_params.py), on the request schemas
_NO_CONTROL = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*"
#: something that draws: not a space, control, zero-width, bidi mark or blank letter
_VISIBLE = "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u034f\\u115f\\u1160\\u180e\\u200b-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u2800\\u3000\\u3164\\ufeff\\uffa0]"
_PROMPT = {
    "minLength": 1,
    "maxLength": MAX_PROMPT,
    "pattern": f"^{_NO_CONTROL}{_VISIBLE}{_NO_CONTROL}$",
}
_NEGATIVE_PROMPT = {"maxLength": MAX_PROMPT, "pattern": f"^{_NO_CONTROL}$"}
_BINARY = {"type": "string", "format": "binary"}


def _image(description: str) -> dict[str, Any]:
    return {**_BINARY, "contentMediaType": "image/*", "description": description}


#: the parts of each multipart form (the controllers read them strictly: unknown,
#: repeated or mistyped parts are a 422 naming the part)
FORMS: dict[str, dict[str, Any]] = {
    "generateEdit": {
        "type": "object",
        "required": ["model", "prompt", "image", "mask"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "description": "An `edit` model of /v1/models"},
            "prompt": {"type": "string", **_PROMPT},
            "negativePrompt": {"type": "string", **_NEGATIVE_PROMPT},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "strength": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.85},
            "image": _image("The picture to edit (PNG, JPEG, WebP; at most 20 MB)"),
            "mask": _image("Where to repaint: white repaints, black keeps"),
        },
    },
    "generateVideo": {
        "type": "object",
        "required": ["model", "prompt"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "description": "A `video` model of /v1/models"},
            "inputType": {
                "type": "string",
                "enum": ["text", "image", "keyframes"],
                "default": "text",
                "description": "`image` needs `image`; `keyframes` needs both frames",
            },
            "prompt": {"type": "string", **_PROMPT},
            "negativePrompt": {"type": "string", **_NEGATIVE_PROMPT},
            "durationSeconds": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "resolution": {"type": "string", "enum": ["480p", "720p"], "default": "480p"},
            "fps": {"type": "integer", "minimum": 8, "maximum": 30, "default": 16},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "image": _image("The first frame, for `inputType: image`"),
            "firstFrame": _image("The first keyframe, for `inputType: keyframes`"),
            "lastFrame": _image("The last keyframe, for `inputType: keyframes`"),
        },
    },
    "addTrainingPhoto": {
        "type": "object",
        "required": ["photo"],
        "additionalProperties": False,
        "properties": {"photo": _image("One photo (JPEG, PNG, WebP, HEIC; at most 25 MB)")},
    },
    "avatar": {
        "type": "object",
        "required": ["avatar"],
        "additionalProperties": False,
        "properties": {"avatar": _image("The picture (PNG, JPEG, WebP, HEIC; at most 20 MB)")},
    },
}

#: what Litestar gives a handler by name, never read from the request
_RESERVED = frozenset({"data", "request", "self", "state", "scope", "headers", "cookies", "socket"})
_TIME = "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?$"
_SIDE = {"minimum": MIN_SIDE, "maximum": MAX_SIDE, "multipleOf": 8}
LIMITS: dict[str, dict[str, dict[str, Any]]] = {
    "ImageRequest": {
        "prompt": _PROMPT,
        "negativePrompt": _NEGATIVE_PROMPT,
        "width": _SIDE,
        "height": _SIDE,
        "count": {"minimum": 1, "maximum": 4},
        "seed": {"minimum": 0, "maximum": 2**63 - 1},
        "loraScale": {"minimum": MIN_LORA_SCALE, "maximum": MAX_LORA_SCALE},
    },
    # what genstudio.core.model.notifications.push_token takes
    "RegisterTokenRequest": {
        "token": {"pattern": _EXPO_TOKEN.pattern},
        "platform": {"enum": [p.value for p in Platform]},
        "deviceId": {"minLength": 1, "maxLength": 200},
    },
    # msgspec decodes a ``time`` as RFC 3339's partial-time, seconds required (Litestar
    # calls it a duration); an offset (Z, +02:00) is taken too but not documented
    "QuietHoursBody": {
        "start": {"format": None, "pattern": _TIME},
        "end": {"format": None, "pattern": _TIME},
    },
}
#: limits of query parameters the handlers check themselves: operationId -> name -> schema
PARAMETER_LIMITS: dict[str, dict[str, dict[str, Any]]] = {
    "listNotifications": {"limit": {"minimum": 1, "maximum": 100}},  # the core's 1-100
}

_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def operation_id(handler: HTTPRouteHandler, method: Method, path_components: list[Any]) -> str:
    """``OpenAPIConfig.operation_id_creator``: the table's name, else the handler's
    name in camelCase (prefixed by the method where one handler serves several)."""
    key = f"{getattr(method, 'value', method)} {_path_of(path_components)}"
    if key in OPERATION_IDS:
        return OPERATION_IDS[key]
    words = [w for w in _SEPARATORS.split(handler.handler_name) if w]
    if len(handler.http_methods) > 1:
        words.insert(0, str(getattr(method, "value", method)).lower())
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _path_of(path_components: list[Any]) -> str:
    """A route's path as the document writes it (``/v1/generate/{job_id}``)."""
    parts = [c if isinstance(c, str) else "{" + c.name + "}" for c in path_components]
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def takes_token(handler: HTTPRouteHandler) -> bool:
    """Whether the route needs a bearer token: its handler takes the principal (the
    same rule the rate limits use to decide whether to verify a token)."""
    return "principal" in handler.parsed_fn_signature.parameters


def problem_statuses(handler: HTTPRouteHandler, op_id: str, path: str) -> frozenset[int]:
    """The problem statuses a route can answer, from what its handler reads."""
    # every request: the head's limits, the request deadline, a query parameter the route
    # does not take (query.py)
    statuses = {422, 431, 503}
    parameters = handler.parsed_fn_signature.parameters
    if not path.startswith(("/health/", "/schema")):
        statuses.add(429)
    if takes_token(handler):
        statuses.add(401)
    if "data" in parameters or op_id in FORMS:  # a form: read by the handler as it streams
        statuses |= {400, 413, 422}
    if "{" in path:
        statuses.add(404)  # no such resource; a path id that is not a UUID
    provided = set(handler.resolve_dependencies()) | _RESERVED
    if set(parameters) - provided:
        statuses.add(422)  # a query, header or path parameter out of its bounds
    if "operations" in handler.resolve_tags():  # the controller's tags included
        statuses.add(403)  # a user's token, not the service role's
    return frozenset(statuses | EXTRA_PROBLEMS.get(op_id, frozenset()))


def _problem_spec(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=MEANING.get(status, "A problem (RFC 9457)"),
        generate_examples=False,
    )


def declare(app: Litestar) -> None:
    """Complete the app's OpenAPI document: problem responses and byte bodies on every
    handler (before the document is built), then forms and public routes on the
    built document (which the app then serves as it is)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            path = _path_of(route.path_components)
            method = sorted(handler.http_methods)[0]
            op_id = operation_id(handler, method, route.path_components)
            specs: dict[int, ResponseSpec] = {
                s: _problem_spec(s) for s in sorted(problem_statuses(handler, op_id, path))
            }
            if op_id in BODIES:
                status, schema, description = BODIES[op_id]
                specs[status] = ResponseSpec(
                    data_container=schema, description=description, generate_examples=False
                )
            specs |= EXTRA_RESPONSES.get(op_id, {})
            handler.responses = {**specs, **(handler.responses or {})}
    document = app.openapi_schema
    _strict_bodies(app, document)
    complete_fields(document)  # one of two fields, a map's keys, a free-form query
    for path_item in document.paths.values() if document.paths else ():
        for verb in ("get", "head", "post", "put", "patch", "delete"):
            operation: Operation | None = getattr(path_item, verb)
            if operation is not None:
                _complete(app, operation)


#: the Idempotency-Key header as ``validate_key`` takes it: 1-255 printable characters
#: (written as printable ASCII with no space at either end, which it does not strip)
IDEMPOTENCY_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[!-~]([ -~]*[!-~])?$",
}


def _complete(app: Litestar, operation: Operation) -> None:
    op_id = operation.operation_id or ""
    limits = PARAMETER_LIMITS.get(op_id, {})
    for parameter in operation.parameters or ():
        name = getattr(parameter, "name", "")
        if name.lower() == "idempotency-key":
            parameter.schema = IDEMPOTENCY_KEY  # type: ignore[union-attr]
        schema = getattr(parameter, "schema", None)
        for key, value in limits.get(name, {}).items():
            setattr(schema, _ATTRIBUTE.get(key, key), value)
    body = operation.request_body
    if body is not None and not isinstance(body, Reference) and _optional(body):
        body.required = False  # the handler takes ``data: X | None``: no body is fine
    if op_id in FORMS and operation.request_body is None:
        # the upload routes read their form from the request's stream (forms.py):
        # Litestar sees no body parameter to describe
        operation.request_body = RequestBody(
            content={"multipart/form-data": OpenAPIMediaType()}, required=True
        )
    if op_id in FORMS and isinstance(operation.request_body, RequestBody):
        for media in operation.request_body.content.values():
            media.schema = FORMS[op_id]  # type: ignore[assignment]  # a JSON Schema dict
    responses = operation.responses or {}
    bad_request = responses.get("400")
    if bad_request is not None and PROBLEM_JSON not in (bad_request.content or {}):  # type: ignore[union-attr]
        # Litestar's own validation answer (JSON, not a problem): ours is a 422 problem
        del responses["400"]
    for status, (media_type, name) in NOT_PROBLEMS.get(op_id, {}).items():
        response = responses.get(str(status))
        if isinstance(response, OpenAPIResponse):
            schema = Reference(ref=f"#/components/schemas/{name}")
            response.content = {**(response.content or {}), media_type: OpenAPIMediaType(schema)}
    handler = _handlers(app).get(op_id)
    if handler is not None and not takes_token(handler):
        operation.security = []  # no bearer token: health, webhooks, signed media


def _strict_bodies(app: Litestar, document: Any) -> None:
    """``forbid_unknown_fields`` bodies say ``additionalProperties: false``; the core's
    field limits (:data:`LIMITS`) go on their properties."""
    schemas = document.components.schemas or {}
    for handler in _handlers(app).values():
        parameter = handler.parsed_fn_signature.parameters.get("data")
        for struct in _structs(parameter.annotation if parameter is not None else None):
            schema = schemas.get(struct.__name__)
            if schema is None:
                continue
            if struct.__struct_config__.forbid_unknown_fields:
                schema.additional_properties = False
            for name, extra in _limits().get(struct.__name__, {}).items():
                target = (schema.properties or {}).get(name)
                for variant in [target, *(getattr(target, "one_of", None) or ())]:
                    if getattr(variant, "type", None) not in (None, OpenAPIType.NULL):
                        for key, value in extra.items():
                            setattr(variant, _ATTRIBUTE.get(key, key), value)


_ATTRIBUTE = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "multipleOf": "multiple_of",
}


@cache
def _limits() -> dict[str, dict[str, dict[str, Any]]]:
    """:data:`LIMITS` and the social, safety and notification fields' (openapi_fields.py)."""
    merged = {name: dict(fields) for name, fields in LIMITS.items()}
    for name, fields in field_limits().items():
        merged.setdefault(name, {}).update(fields)
    return merged


def _structs(annotation: Any, depth: int = 0) -> list[type[msgspec.Struct]]:
    """The Structs a body annotation names, with the Structs their fields hold."""
    if annotation is None or depth > 3:
        return []
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        found = [annotation]
        for field in msgspec.structs.fields(annotation):
            found += _structs(field.type, depth + 1)
        return found
    found = []
    for arg in get_args(annotation):
        found += _structs(arg, depth + 1)
    return found


def _optional(body: RequestBody) -> bool:
    for media in (body.content or {}).values():
        schema = media.schema
        variants = getattr(schema, "one_of", None) or ()
        if any(getattr(v, "type", None) == OpenAPIType.NULL for v in variants):
            return True
    return False


def _handlers(app: Litestar) -> dict[str, HTTPRouteHandler]:
    found: dict[str, HTTPRouteHandler] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                for method in handler.http_methods:
                    found[operation_id(handler, method, route.path_components)] = handler
    return found
