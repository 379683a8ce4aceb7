"""Which GPU provider gets a job: ordered preferences, health, and circuit breakers.

Pure decision code: every method takes the time it should judge by (``now``, an
aware datetime from the ``Clock`` port) and nothing here reads a clock, sleeps or
talks to a provider. The worker feeds in what it observes (submit and poll results,
health checks) and asks ``choose`` before each submission.

State is per process: each worker learns about a provider from its own calls. That
is enough for failover (a dead provider trips every worker's breaker within a few
jobs) and needs no shared store.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.jobs import FailureReason, JobError


class ProviderHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider's health check said: up or down, and its queue."""

    healthy: bool
    queued: int = 0
    running: int = 0
    detail: str = ""


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # calls flow; consecutive failures are counted
    OPEN = "open"  # no calls until the cool-down has passed
    HALF_OPEN = "half_open"  # the cool-down passed: a trial call decides


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures (errors or timeouts).

    Once open it refuses every call until ``cooldown`` has passed since it opened;
    then it is half-open and lets ``trial_calls`` calls through (``acquire``). A
    success closes it; a failure opens it again for a fresh cool-down. A trial that
    never reports back (its worker died) frees its slot after another cool-down, so
    the breaker cannot stay half-open for ever.

    Outcomes reported while open (calls started before it opened, finishing late)
    change nothing: only the trial decides.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=30),
        trial_calls: int = 1,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown <= timedelta(0):
            raise ValueError("cooldown must be positive")
        if trial_calls < 1:
            raise ValueError("trial_calls must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.trial_calls = trial_calls
        self._failures = 0
        self._opened_at: datetime | None = None  # set while open or half-open
        self._trials: list[datetime] = []  # when each in-flight trial was let through

    def state(self, now: datetime) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now < self._opened_at + self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows(self, now: datetime) -> bool:
        """Would a call be let through now? (A query: takes no trial slot.)"""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        return len(self._live_trials(now)) < self.trial_calls

    def acquire(self, now: datetime) -> bool:
        """Let one call through if allowed; in half-open this takes a trial slot."""
        if not self.allows(now):
            return False
        if self.state(now) is BreakerState.HALF_OPEN:
            self._trials = [*self._live_trials(now), now]
        return True

    def record_success(self, now: datetime) -> None:
        state = self.state(now)
        if state is BreakerState.OPEN:
            return
        self._failures = 0
        self._opened_at = None
        self._trials = []

    def record_failure(self, now: datetime) -> None:
        state = self.state(now)
        if state is BreakerState.OPEN:
            return
        if state is BreakerState.HALF_OPEN:
            self._trip(now)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._trip(now)

    def _trip(self, now: datetime) -> None:
        self._opened_at = now
        self._trials = []

    def _live_trials(self, now: datetime) -> list[datetime]:
        return [t for t in self._trials if now < t + self.cooldown]


class ProviderView:
    """What the router knows about one provider (for logs, /admin and tests)."""

    __slots__ = ("breaker", "health", "health_at", "name")

    def __init__(self, name: str, breaker: CircuitBreaker) -> None:
        self.name = name
        self.breaker = breaker
        self.health: ProviderHealth | None = None
        self.health_at: datetime | None = None


class ProviderRouter:
    """Routes model ids to providers in order of preference, primary first.

    ``routes`` maps a catalog model id to the provider names that serve it, most
    preferred first; ``default`` serves model ids not in ``routes``. A provider is
    eligible when its breaker lets a call through and its latest health check, if
    one younger than ``health_max_age`` exists, said healthy (never checked, or only
    long ago: unknown, so the breaker alone decides). ``choose`` always walks the
    preference order from the top, so once the primary's breaker closes again (or
    its health check passes) new jobs go back to it.
    """

    def __init__(
        self,
        routes: Mapping[str, Sequence[str]],
        *,
        default: Sequence[str] = (),
        failure_threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=30),
        health_max_age: timedelta = timedelta(minutes=2),
    ) -> None:
        self._routes = {model: tuple(names) for model, names in routes.items()}
        self._default = tuple(default)
        for model, names in [*self._routes.items(), ("(default)", self._default)]:
            if len(set(names)) != len(names):
                raise ValueError(f"provider listed twice for {model}: {names}")
        self.health_max_age = health_max_age
        self._providers: dict[str, ProviderView] = {}
        for name in self._all_names():
            self._providers[name] = ProviderView(
                name,
                CircuitBreaker(failure_threshold=failure_threshold, cooldown=cooldown),
            )

    def _all_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for names in [*self._routes.values(), self._default]:
            for name in names:
                seen.setdefault(name, None)
        return list(seen)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._providers)

    def view(self, provider: str) -> ProviderView:
        try:
            return self._providers[provider]
        except KeyError:
            raise KeyError(f"no provider {provider!r} is routed") from None

    def preferences(self, model_id: str) -> tuple[str, ...]:
        """Every provider that serves the model, most preferred first."""
        return self._routes.get(model_id, self._default)

    def healthy(self, provider: str, now: datetime) -> bool:
        """The latest health check, if recent, said healthy (unknown counts as healthy)."""
        view = self.view(provider)
        if view.health is None or view.health_at is None:
            return True
        if now - view.health_at > self.health_max_age:
            return True
        return view.health.healthy

    def available(self, provider: str, now: datetime) -> bool:
        return self.healthy(provider, now) and self.view(provider).breaker.allows(now)

    def choose(self, model_id: str, now: datetime, exclude: Iterable[str] = ()) -> str | None:
        """The first eligible provider for the model, not in ``exclude``; None if none is.

        Choosing a half-open provider takes its trial slot: report the call's outcome
        with ``record_success``/``record_failure``.
        """
        skip = frozenset(exclude)
        for name in self.preferences(model_id):
            if name in skip or not self.healthy(name, now):
                continue
            if self.view(name).breaker.acquire(now):
                return name
        return None

    def record_success(self, provider: str, now: datetime) -> None:
        """A call to ``provider`` worked. A provider this process does not route (a
        job taken over from a worker configured with it) has no breaker here: nothing
        to record."""
        if provider in self._providers:
            self._providers[provider].breaker.record_success(now)

    def record_failure(self, provider: str, now: datetime) -> None:
        """A call to ``provider`` failed (one not routed here: nothing to record)."""
        if provider in self._providers:
            self._providers[provider].breaker.record_failure(now)

    def record_health(self, provider: str, health: ProviderHealth, now: datetime) -> None:
        view = self.view(provider)
        if view.health_at is not None and now < view.health_at:
            return  # an older check finishing late must not overwrite a newer one
        view.health, view.health_at = health, now

    def record_error(self, provider: str, error: JobError, now: datetime) -> None:
        """Record a job's failure against the provider only if the provider is at fault.

        A content refusal is a working provider answering (a success for its breaker);
        an internal error is ours and says nothing about the provider.
        """
        if is_provider_fault(error):
            self.record_failure(provider, now)
        elif error.reason is FailureReason.CONTENT:
            self.record_success(provider, now)


#: failures that say the provider broke, not the request: they count against its
#: breaker and the job may be resubmitted elsewhere. CONTENT is the request's fault
#: (never retried); INTERNAL is ours.
PROVIDER_FAULTS = frozenset({FailureReason.INFRASTRUCTURE, FailureReason.TIMEOUT})


def is_provider_fault(error: JobError) -> bool:
    return error.reason in PROVIDER_FAULTS
