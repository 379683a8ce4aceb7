"""Error tracking with Sentry, only when ``SENTRY_DSN`` is set.

What becomes an event: an error logged with its exception (every ``log.exception``:
the API's unexpected 500s, ``internal_error_handler``; a worker's failed delivery
pass; taskiq's "Exception found while executing function"), through sentry-sdk's
logging integration, and an exception that escapes the ASGI app. Expected answers
(4xx problems, a dependency's 503) are not errors and send nothing. Every event and
breadcrumb is scrubbed first (``entrypoints/scrubbing.py``); local variables are
not collected at all (a prompt or a token could sit in any of them).

The HTTP side is sentry-sdk's ASGI middleware around the whole app (``wrap``),
not its ``LitestarIntegration``: that integration replaces Litestar's
``HTTPRoute.handle`` with one that reads and parses every request's body before
the handler runs (``ConnectionDataExtractor(parse_body=True)``: ``request.json()``
or ``request.form()``), so a multipart upload would be read whole before our
streamed, bounded form parser could refuse it (413), and every POST would pay a
body parse. The integration is disabled; the ASGI middleware gives events the
request's method, URL and (scrubbed) headers, and no body.
"""

from __future__ import annotations

import logging

import sentry_sdk
from litestar import Litestar
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.integrations.litestar import LitestarIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from genstudio.entrypoints.scrubbing import scrub_breadcrumb, scrub_event
from genstudio.entrypoints.settings.observability import ObservabilitySettings

log = logging.getLogger("genstudio")


def init_error_tracking(settings: ObservabilitySettings, *, process: str) -> bool:
    """Start sending errors to Sentry if ``SENTRY_DSN`` is set (once per process;
    again replaces the client). ``process``: api, worker or scheduler, a tag on every
    event. Returns whether it is on."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # send_default_pii stays at its default (off): no cookies, user addresses or
        # Authorization headers (naming it is deprecated since sentry-sdk 2.5x)
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,  # type: ignore[arg-type]  # a plain dict in, a plain dict out
        before_breadcrumb=scrub_breadcrumb,
        # only what is named here and sentry's defaults (logging, dedupe, ...): the
        # auto-enabled ones would include LitestarIntegration (see the docstring)
        auto_enabling_integrations=False,
        disabled_integrations=[LitestarIntegration()],
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    sentry_sdk.set_tag("process", process)
    log.info("error tracking on", extra={"process_type": process})
    return True


def wrap(app: Litestar) -> None:
    """Run the whole app (routing and error handling included) inside Sentry's ASGI
    middleware, which gives every event of a request that request's context."""
    app.asgi_handler = SentryAsgiMiddleware(app.asgi_handler, transaction_style="url")
