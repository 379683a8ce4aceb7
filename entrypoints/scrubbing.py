"""What an error report may carry out of the process: Sentry events scrubbed of
tokens, prompts, store payloads and email addresses before they are sent.

Sentry's own defaults (``send_default_pii=False``) already leave out cookies, the
user's address and the ``Authorization`` header; this is the second line, applied
to the whole event in ``before_send`` and to every breadcrumb:

- a value under a sensitive key (``authorization``, ``*token*``, ``*secret*``,
  ``password``, ``*prompt*``, ``signedPayload``/``signed*``, ``*email*``, API and
  service keys, receipts, signatures, cookies) is replaced, wherever it is:
  request headers and bodies, local variables, breadcrumbs' data, extras, contexts;
- the body of a purchase or store-webhook request is replaced whole (a JWS, a
  Pub/Sub message whose data holds a purchase token);
- in any text: JWTs and JWSs (``eyJ…``), bearer tokens, email addresses,
  ``token=``/``key=``/``secret=``/``signature=`` query parameters, and
  ``prompt='…'`` / ``"prompt": "…"`` as a repr or JSON writes them;
- a text found under a sensitive key (a prompt in a body or a local variable) is
  also taken out of every other text of the event (an exception message quoting it);
- the user is reduced to its id.

What no rule can know: a prompt quoted in free text when nothing else in the event
holds it under its name. Local variables are not collected (``error_tracking.py``)
and request bodies are not sent, so messages are where that could happen; code
that raises or logs must not put user content in its messages.

Kept on purpose: ``Idempotency-Key`` and ``X-Request-Id`` (they tie a report to a
request and a retry, and are not secrets), ids, routes, status codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FILTERED = "[Filtered]"

_SENSITIVE_KEY = re.compile(
    r"authorization|cookie|password|passwd|secret|token|apikey|servicekey|accesskey"
    r"|privatekey|signingkey|dsn|prompt|signedpayload|signed|jws|receipt|email"
    r"|credential|signature|session"
)
#: request paths whose bodies are store payloads (JWS, purchase tokens) in full
_STORE_PATHS = ("/v1/purchases", "/v1/webhooks/")

_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # a JWT / JWS: base64url of '{"' then two more segments
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), FILTERED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + FILTERED),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), FILTERED),
    (
        re.compile(
            r"(?i)((?:^|[?&;])(?:[a-z_]*token|key|api_key|secret|signature|sig|password)=)[^&\s#'\"]+"
        ),
        r"\1" + FILTERED,
    ),
    # repr and JSON forms of the fields named above
    (
        re.compile(
            r"(?i)\b((?:negative_|enhanced_)?prompt|purchase_token|signed_payload|email"
            r"|token|secret|password)=(['\"])(?:\\.|(?!\2).)*\2"
        ),
        r"\1=\2" + FILTERED + r"\2",
    ),
    (
        re.compile(
            r"(?i)(\"(?:negative|enhanced)?prompt\"|\"purchaseToken\"|\"signedPayload\""
            r"|\"email\"|\"token\"|\"password\")(\s*:\s*)\"(?:\\.|[^\"\\])*\""
        ),
        r"\1\2" + '"' + FILTERED + '"',
    ),
)


def sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normal = key.lower().replace("-", "").replace("_", "").replace(" ", "")
    return normal != "idempotencykey" and bool(_SENSITIVE_KEY.search(normal))


def scrub_text(text: str) -> str:
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def _held_values(value: Any, key: object = None, found: set[str] | None = None) -> set[str]:
    """Every text held under a sensitive key, anywhere in ``value``: the same text is
    then taken out of every other place it shows (an exception's message that quotes
    a prompt a local variable or a body holds)."""
    found = set() if found is None else found
    if key is not None and sensitive_key(key) and isinstance(value, str):
        text = value.strip("'\"")  # a local variable's repr is quoted
        if len(text) >= 4:
            found.add(text)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _held_values(v, k, found)
    elif isinstance(value, list | tuple):
        for v in value:
            _held_values(v, None, found)
    return found


def scrub(value: Any, key: object = None, held: frozenset[str] = frozenset()) -> Any:
    """``value`` with every sensitive part replaced (a new object; the input is kept);
    ``held``: texts to take out wherever they appear."""
    if key is not None and sensitive_key(key) and value is not None:
        return FILTERED
    if isinstance(value, Mapping):
        return {k: scrub(v, k, held) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, None, held) for v in value]
    if isinstance(value, str):
        for text in held:
            value = value.replace(text, FILTERED)
        return scrub_text(value)
    return value


def _store_request(request: Mapping[str, Any]) -> bool:
    url = request.get("url")
    if not isinstance(url, str):
        return False
    path = re.sub(r"^[a-z]+://[^/]+", "", url)
    return path.startswith(_STORE_PATHS)


def scrub_event(event: dict[str, Any], hint: object = None) -> dict[str, Any]:
    """Sentry's ``before_send``: the event, scrubbed (see the module's docstring)."""
    request = event.get("request")
    store_body = isinstance(request, Mapping) and _store_request(request)
    held = frozenset(sorted(_held_values(event), key=len, reverse=True))
    scrubbed: dict[str, Any] = scrub(event, None, held)
    if store_body and scrubbed["request"].get("data") is not None:
        scrubbed["request"]["data"] = FILTERED
    user = scrubbed.get("user")
    if isinstance(user, Mapping):
        scrubbed["user"] = {"id": user["id"]} if "id" in user else {}
    return scrubbed


def scrub_breadcrumb(crumb: dict[str, Any], hint: object = None) -> dict[str, Any]:
    """Sentry's ``before_breadcrumb``: log lines, HTTP calls and queries, scrubbed."""
    result: dict[str, Any] = scrub(crumb)
    return result
