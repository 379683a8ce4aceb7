"""Provider routing: circuit breakers, health, preference order and failover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.core.model.routing import (
    BreakerState,
    CircuitBreaker,
    ProviderHealth,
    ProviderRouter,
    is_provider_fault,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
COOL = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tripped(threshold: int = 3) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown=COOL)
    for _ in range(threshold):
        breaker.record_failure(at(0))
    return breaker


# -- the breaker ------------------------------------------------------------------------


def test_a_breaker_opens_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown=COOL)
    breaker.record_failure(at(0))
    breaker.record_failure(at(1))
    assert breaker.state(at(1)) is BreakerState.CLOSED
    assert breaker.allows(at(1))

    breaker.record_failure(at(2))

    assert breaker.state(at(2)) is BreakerState.OPEN
    assert not breaker.allows(at(2))
    assert not breaker.acquire(at(31))


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown=COOL)
    for _ in range(5):
        breaker.record_failure(at(0))
        breaker.record_failure(at(0))
        breaker.record_success(at(0))
    assert breaker.state(at(0)) is BreakerState.CLOSED


def test_after_the_cooldown_one_trial_goes_through_and_a_success_closes_it() -> None:
    breaker = tripped()

    assert breaker.state(at(30)) is BreakerState.HALF_OPEN
    assert breaker.acquire(at(30))
    assert not breaker.acquire(at(31)), "only one trial at a time"

    breaker.record_success(at(32))

    assert breaker.state(at(32)) is BreakerState.CLOSED
    assert breaker.acquire(at(32))
    assert breaker.acquire(at(32))


def test_a_failed_trial_opens_it_again_for_a_fresh_cooldown() -> None:
    breaker = tripped()
    assert breaker.acquire(at(40))

    breaker.record_failure(at(41))

    assert breaker.state(at(70)) is BreakerState.OPEN
    assert breaker.state(at(71)) is BreakerState.HALF_OPEN


def test_a_trial_that_never_reports_frees_its_slot_after_another_cooldown() -> None:
    breaker = tripped()
    assert breaker.acquire(at(30))
    assert not breaker.allows(at(59))
    assert breaker.acquire(at(60))


def test_late_outcomes_while_open_change_nothing() -> None:
    breaker = tripped()
    breaker.record_success(at(5))
    assert breaker.state(at(5)) is BreakerState.OPEN
    breaker.record_failure(at(20))
    assert breaker.state(at(30)) is BreakerState.HALF_OPEN, "the cool-down was not extended"


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"cooldown": timedelta(0)}, {"trial_calls": 0}],
)
def test_a_breaker_refuses_meaningless_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


events = st.lists(
    st.tuples(
        st.sampled_from(["success", "failure", "acquire", "allows"]),
        st.floats(min_value=0, max_value=20, allow_nan=False),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.integers(min_value=1, max_value=4),
    cooldown=st.floats(min_value=0.5, max_value=15),
    steps=events,
)
def test_an_open_breaker_never_lets_a_call_through_before_its_cooldown(
    threshold: int, cooldown: float, steps: list[tuple[str, float]]
) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown=timedelta(seconds=cooldown))
    now = 0.0
    opened_at: float | None = None  # the model: when the breaker last went open
    for action, gap in steps:
        now += gap
        before = breaker.state(at(now))
        if action == "success":
            breaker.record_success(at(now))
        elif action == "failure":
            breaker.record_failure(at(now))
        else:
            let_through = (
                breaker.acquire(at(now)) if action == "acquire" else breaker.allows(at(now))
            )
            if opened_at is not None and now < opened_at + cooldown:
                assert not let_through, f"let through at {now}, opened at {opened_at}"
        after = breaker.state(at(now))
        if after is BreakerState.OPEN and before is not BreakerState.OPEN:
            opened_at = now
        if after is BreakerState.CLOSED:
            opened_at = None
        if opened_at is not None and now < opened_at + cooldown:
            assert after is BreakerState.OPEN


# -- the router -------------------------------------------------------------------------


def router(**kwargs: object) -> ProviderRouter:
    return ProviderRouter(
        {"flux-schnell": ["modal", "runpod"], "sdxl": ["runpod"]},
        default=["modal"],
        failure_threshold=2,
        cooldown=COOL,
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_primary_is_chosen_while_it_works() -> None:
    r = router()
    assert r.choose("flux-schnell", at(0)) == "modal"
    assert r.choose("sdxl", at(0)) == "runpod"
    assert r.choose("unlisted-model", at(0)) == "modal"
    assert r.preferences("flux-schnell") == ("modal", "runpod")
    assert r.providers == ("modal", "runpod")


def test_a_failing_primary_fails_over_and_new_jobs_return_to_it_once_it_recovers() -> None:
    r = router()
    r.record_failure("modal", at(0))
    r.record_failure("modal", at(1))

    assert r.choose("flux-schnell", at(2)) == "runpod"
    assert r.choose("flux-schnell", at(20)) == "runpod"

    trial = r.choose("flux-schnell", at(31))  # cool-down over: modal gets one trial
    assert trial == "modal"
    assert r.choose("flux-schnell", at(31)) == "runpod", "the trial is in flight"
    r.record_success("modal", at(32))

    assert r.choose("flux-schnell", at(33)) == "modal"
    assert r.choose("flux-schnell", at(33)) == "modal"


def test_exclude_skips_the_provider_a_job_just_failed_on() -> None:
    r = router()
    assert r.choose("flux-schnell", at(0), exclude=["modal"]) == "runpod"
    assert r.choose("sdxl", at(0), exclude=("runpod",)) is None


def test_nothing_is_chosen_when_every_provider_is_open() -> None:
    r = router()
    for name in ("modal", "runpod"):
        r.record_failure(name, at(0))
        r.record_failure(name, at(0))
    assert r.choose("flux-schnell", at(1)) is None


def test_an_unhealthy_health_check_takes_a_provider_out_until_a_healthy_one() -> None:
    r = router()
    r.record_health("modal", ProviderHealth(healthy=False, detail="500"), at(0))

    assert r.choose("flux-schnell", at(1)) == "runpod"
    assert not r.available("modal", at(1))

    r.record_health("modal", ProviderHealth(healthy=True), at(10))
    assert r.choose("flux-schnell", at(11)) == "modal"


def test_a_stale_unhealthy_check_no_longer_counts() -> None:
    r = router(health_max_age=timedelta(seconds=60))
    r.record_health("modal", ProviderHealth(healthy=False), at(0))
    assert r.choose("flux-schnell", at(59)) == "runpod"
    assert r.choose("flux-schnell", at(61)) == "modal"


def test_a_late_health_result_does_not_overwrite_a_newer_one() -> None:
    r = router()
    r.record_health("modal", ProviderHealth(healthy=True), at(10))
    r.record_health("modal", ProviderHealth(healthy=False), at(5))
    assert r.healthy("modal", at(11))


def test_content_refusals_do_not_count_against_a_provider_but_outages_do() -> None:
    r = router()
    content = JobError(FailureReason.CONTENT, "nsfw")
    outage = JobError(FailureReason.INFRASTRUCTURE, "500")
    timeout = JobError(FailureReason.TIMEOUT, "slow")
    for _ in range(5):
        r.record_error("modal", content, at(0))
    assert r.choose("flux-schnell", at(0)) == "modal"

    r.record_error("modal", outage, at(1))
    r.record_error("modal", timeout, at(2))
    assert r.choose("flux-schnell", at(3)) == "runpod"
    assert is_provider_fault(outage)
    assert is_provider_fault(timeout)
    assert not is_provider_fault(content)
    assert not is_provider_fault(JobError(FailureReason.INTERNAL, "bug"))


def test_unknown_providers_and_duplicate_routes_are_refused() -> None:
    r = router()
    with pytest.raises(KeyError):
        r.view("replicate")
    # an outcome of a provider this process does not route (a job taken over from a
    # worker configured with it) has no breaker to go to: recorded nowhere, no error
    for _ in range(10):
        r.record_failure("replicate", at(0))
        r.record_error("replicate", JobError(FailureReason.TIMEOUT, "slow"), at(0))
    r.record_success("replicate", at(0))
    assert r.choose("flux-schnell", at(0)) == "modal"  # the routed ones untouched
    with pytest.raises(ValueError):
        ProviderRouter({"flux-schnell": ["modal", "modal"]})
