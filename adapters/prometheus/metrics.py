"""The metrics genstudio's processes record, defined once (``prometheus_client``).

Counters, histograms and the breaker gauge live in the process's default registry
(in multiprocess mode, in ``PROMETHEUS_MULTIPROC_DIR``'s files, summed over every
process at scrape time). What Postgres and Redis know (queue depth, jobs by
state) is not recorded here: it is read at scrape time (``snapshot.py``).

Every name, label and meaning is listed in docs/operations.md; the alert rules
(deploy/prometheus/alerts.yml) and the dashboard (deploy/grafana/genstudio.json)
use these names, and a test checks that each name they use exists.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from genstudio.ports.metrics import AttemptOutcome, CreditFlow, JobOutcome, PushStage

PREFIX = "genstudio"

#: HTTP latency (seconds): most answers take milliseconds; uploads and a stalled
#: dependency (503 at the request deadline) take seconds
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: a GPU job runs seconds (an image) to an hour (training)
RUN_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
#: waits in the queue, from due to claimed
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
WEBHOOKS = Counter(
    f"{PREFIX}_webhooks",
    "Webhook deliveries by source (apple, google, runpod) and outcome: accepted (2xx), "
    "rejected (4xx: did not verify, not retried by the sender), failed (5xx: retried)",
    ["source", "outcome"],
)
JOBS_SUBMITTED = Counter(
    f"{PREFIX}_jobs_submitted", "Jobs recorded (credits held), by kind", ["kind"]
)
QUEUE_WAIT = Histogram(
    f"{PREFIX}_job_queue_wait_seconds",
    "Time from a job being due to a worker claiming it, by kind",
    ["kind"],
    buckets=WAIT_BUCKETS,
)
ATTEMPTS = Counter(
    f"{PREFIX}_job_attempts",
    "Attempts at a GPU provider that ended, by kind, provider, outcome (succeeded, "
    "failed, not_taken) and failure reason (none, infrastructure, timeout, content, internal)",
    ["kind", "provider", "outcome", "reason"],
)
RUN_TIME = Histogram(
    f"{PREFIX}_job_run_seconds",
    "Time from a provider accepting an attempt to its end, by kind and provider",
    ["kind", "provider"],
    buckets=RUN_BUCKETS,
)
JOBS_FINISHED = Counter(
    f"{PREFIX}_jobs_finished",
    "Jobs that ended, by kind and outcome (succeeded, failed, dead_lettered, cancelled)",
    ["kind", "outcome"],
)
CREDITS = Counter(
    f"{PREFIX}_credits",
    "Credits moved, by flow (granted, purchased, allowance, held, spent, released, "
    "refunded, clawed_back, expired, adjusted_up, adjusted_down)",
    ["flow"],
)
PUSH_SENT = Counter(f"{PREFIX}_push_sent", "Push messages accepted by the push service")
PUSH_ERRORS = Counter(
    f"{PREFIX}_push_errors",
    "Push messages that failed, by stage (send, receipt) and error code",
    ["stage", "error"],
)
BREAKER = Gauge(
    f"{PREFIX}_provider_breaker_state",
    "A GPU provider's circuit breaker in a process that runs jobs: 0 closed, "
    "1 half-open, 2 open (the most open of the live processes in multiprocess mode)",
    ["provider"],
    multiprocess_mode="livemax",
)

BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: the route label of a request no route matched (its path would grow without bound)
UNMATCHED = "unmatched"
_WEBHOOKS = "/v1/webhooks/"

_children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One HTTP answer. ``route`` is the matched route's template (None: no route);
    a webhook route's answer also counts as a webhook delivery."""
    key = (method, route or UNMATCHED, status)
    children = _children.get(key)
    if children is None:
        label_method = method if method in _METHODS else "other"
        label_route = route or UNMATCHED
        webhook: Counter | None = None
        if route is not None and route.startswith(_WEBHOOKS):
            outcome = "accepted" if status < 400 else "rejected" if status < 500 else "failed"
            webhook = WEBHOOKS.labels(route[len(_WEBHOOKS) :].strip("/"), outcome)
        children = (
            HTTP_REQUESTS.labels(label_method, label_route, str(status)),
            HTTP_DURATION.labels(label_method, label_route),
            webhook,
        )
        if len(_children) < 10_000:  # bounded: a flood of odd methods cannot grow it
            _children[key] = children
    requests, duration, webhook = children
    requests.inc()
    duration.observe(seconds)
    if webhook is not None:
        webhook.inc()


class PrometheusMetrics:
    """The metrics port, recorded into the metrics above."""

    def job_submitted(self, kind: str) -> None:
        JOBS_SUBMITTED.labels(kind).inc()

    def job_claimed(self, kind: str, waited_seconds: float) -> None:
        QUEUE_WAIT.labels(kind).observe(waited_seconds)

    def attempt_ended(
        self,
        *,
        kind: str,
        provider: str,
        outcome: AttemptOutcome,
        reason: str,
        run_seconds: float | None,
    ) -> None:
        ATTEMPTS.labels(kind, provider, outcome.value, reason).inc()
        if run_seconds is not None and outcome is not AttemptOutcome.NOT_TAKEN:
            RUN_TIME.labels(kind, provider).observe(run_seconds)

    def job_finished(self, *, kind: str, outcome: JobOutcome) -> None:
        JOBS_FINISHED.labels(kind, outcome.value).inc()

    def credits_moved(self, flow: CreditFlow, amount: int) -> None:
        CREDITS.labels(flow.value).inc(amount)

    def push_sent(self, count: int) -> None:
        PUSH_SENT.inc(count)

    def push_failed(self, stage: PushStage, error: str, count: int) -> None:
        PUSH_ERRORS.labels(stage.value, error).inc(count)

    def breaker_state(self, provider: str, state: str) -> None:
        BREAKER.labels(provider).set(BREAKER_VALUES.get(state, 0.0))
