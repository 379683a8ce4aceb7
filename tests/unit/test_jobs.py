"""The job state machine, as documented in core/jobs.py.

The expected transitions are written down here from the docstring's diagram, not
read from the implementation's table, so that the two are checked against each other:

    queued -> dispatched -> running -> succeeded
       |          |            |  \\-> failed | cancelled
       |          |            \\---> queued   (requeued for a retry or a failover)
       |          \\-> running | succeeded | failed | cancelled | queued
       \\-> dispatched | failed | cancelled
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import IllegalTransition, InvalidInput, JobFinished
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.pricing import ModelKind

S = JobStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
ERROR = JobError(FailureReason.INFRASTRUCTURE, "gpu went away")

DOCUMENTED: dict[JobStatus, set[JobStatus]] = {
    S.QUEUED: {S.DISPATCHED, S.FAILED, S.CANCELLED},
    S.DISPATCHED: {S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.QUEUED},
    S.RUNNING: {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.QUEUED},
    S.SUCCEEDED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}
TERMINAL = [S.SUCCEEDED, S.FAILED, S.CANCELLED]
ASSETS = (uuid.uuid4(), uuid.uuid4())


def make_job(status: JobStatus = S.QUEUED, **changes: object) -> Job:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "kind": ModelKind.IMAGE,
        "model_id": "flux-schnell",
        "params": ImageParams(prompt="a lighthouse at dusk"),
        "cost": 2,
        "hold_id": uuid.uuid4(),
        "status": status,
        "created_at": T0,
        "updated_at": T0,
    }
    if status in (S.DISPATCHED, S.RUNNING):
        fields.update(provider="memory", provider_job_id="memory-1", attempts=1)
    fields.update(changes)
    return Job(**fields)  # type: ignore[arg-type]


#: the one public move that takes a job to each status
MOVES: dict[JobStatus, Callable[[Job], Job]] = {
    S.QUEUED: lambda job: job.requeue(ERROR, LATER),
    S.DISPATCHED: lambda job: job.dispatch("memory", LATER),
    S.RUNNING: lambda job: job.report_progress(10, LATER),
    S.SUCCEEDED: lambda job: job.succeed(ASSETS, LATER),
    S.FAILED: lambda job: job.fail(ERROR, LATER),
    S.CANCELLED: lambda job: job.cancel(LATER),
}

PAIRS = [
    pytest.param(src, dst, id=f"{src}->{dst}")
    for src, dst in itertools.product(JobStatus, JobStatus)
    # running -> running is a progress report, not a transition (see its own test)
    if not (src is S.RUNNING and dst is S.RUNNING)
]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_a_job_moves_only_along_the_documented_diagram(src: JobStatus, dst: JobStatus) -> None:
    job = make_job(src)
    if dst in DOCUMENTED[src]:
        moved = MOVES[dst](job)
        assert moved.status is dst
        assert moved.updated_at == LATER
        assert moved.id == job.id and moved.version == job.version
        assert job.status is src, "a transition returns a new job; the old one is unchanged"
    elif src.terminal:
        with pytest.raises(JobFinished):
            MOVES[dst](job)
    else:
        with pytest.raises(IllegalTransition) as info:
            MOVES[dst](job)
        assert not isinstance(info.value, JobFinished)


def test_terminal_statuses_are_exactly_the_ones_with_no_way_out() -> None:
    assert {s for s in JobStatus if s.terminal} == {s for s, out in DOCUMENTED.items() if not out}


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize(
    "move",
    [
        *MOVES.values(),
        lambda job: job.accepted_by_provider("memory-2", LATER),
        lambda job: job.report_progress(50, LATER),
    ],
    ids=[*(f"to-{s}" for s in MOVES), "accepted_by_provider", "report_progress"],
)
def test_a_finished_job_rejects_everything_with_job_finished(
    status: JobStatus, move: Callable[[Job], Job]
) -> None:
    with pytest.raises(JobFinished):
        move(make_job(status))


def test_dispatching_counts_an_attempt_and_names_the_provider() -> None:
    job = make_job(S.QUEUED)
    first = job.dispatch("modal", LATER)
    assert (first.attempts, first.provider, first.provider_job_id) == (1, "modal", None)
    again = first.report_progress(30, LATER).requeue(ERROR, LATER).dispatch("runpod", LATER)
    assert (again.attempts, again.provider) == (2, "runpod")


def test_the_provider_id_is_recorded_only_while_dispatched() -> None:
    dispatched = make_job(S.QUEUED).dispatch("modal", LATER)
    accepted = dispatched.accepted_by_provider("modal-42", LATER)
    assert accepted.provider_job_id == "modal-42" and accepted.status is S.DISPATCHED
    for status in (S.QUEUED, S.RUNNING):
        with pytest.raises(IllegalTransition):
            make_job(status).accepted_by_provider("modal-43", LATER)


def test_requeueing_forgets_the_provider_job_and_the_progress_and_keeps_the_error() -> None:
    running = make_job(S.RUNNING, progress=40)
    requeued = running.requeue(ERROR, LATER)
    assert requeued.status is S.QUEUED
    assert (requeued.provider_job_id, requeued.progress, requeued.error) == (None, 0, ERROR)


def test_the_providers_acceptance_time_lasts_as_long_as_its_attempt() -> None:
    """The job timeout runs from ``submitted_at``: a takeover (the same work at the
    provider) keeps it; a new attempt, or a hand-back that ends the work, clears it."""
    accepted = make_job(S.QUEUED).dispatch("modal", T0).accepted_by_provider("modal-42", LATER)
    assert accepted.submitted_at == LATER
    later = LATER + timedelta(minutes=1)
    followed = accepted.report_progress(10, later).leased("worker-b", later, later)
    assert followed.lease_given_up(later).submitted_at == LATER
    assert followed.requeue(ERROR, later).submitted_at is None
    assert followed.handed_back(later).submitted_at is None
    # left by a release that did not clear it: a new attempt starts without it
    stale = msgspec.structs.replace(make_job(S.QUEUED), submitted_at=T0)
    assert stale.dispatch("runpod", later).submitted_at is None


def test_a_succeeded_job_has_its_assets_full_progress_and_no_error() -> None:
    job = make_job(S.RUNNING, progress=60, error=ERROR).succeed(ASSETS, LATER)
    assert (job.asset_ids, job.progress, job.error) == (ASSETS, 100, None)


def test_a_job_cannot_succeed_without_assets() -> None:
    with pytest.raises(InvalidInput) as info:
        make_job(S.RUNNING).succeed((), LATER)
    assert info.value.field == "assets"


def test_a_failed_job_keeps_its_error() -> None:
    error = JobError(FailureReason.CONTENT, "refused")
    assert make_job(S.RUNNING).fail(error, LATER).error == error


def test_a_progress_report_on_a_running_job_only_updates_its_progress() -> None:
    job = make_job(S.RUNNING, progress=20)
    moved = job.report_progress(35, LATER)
    assert (moved.status, moved.progress, moved.updated_at) == (S.RUNNING, 35, LATER)


def test_the_first_progress_report_starts_a_dispatched_job() -> None:
    job = make_job(S.DISPATCHED).report_progress(0, LATER)
    assert (job.status, job.progress) == (S.RUNNING, 0)


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([10, 5], 10),  # never goes back
        ([30, 30, 60], 60),
        ([150], 99),  # 100 is reserved for success
        ([-20], 0),
        ([40, -5, 120, 70], 99),
    ],
)
def test_progress_is_monotone_and_clamped_below_one_hundred(
    reports: list[int], expected: int
) -> None:
    job = make_job(S.DISPATCHED)
    seen = [job.progress]
    for report in reports:
        job = job.report_progress(report, LATER)
        seen.append(job.progress)
    assert seen == sorted(seen)
    assert all(0 <= p <= 99 for p in seen)
    assert job.progress == expected


# ImageParams.validate --------------------------------------------------------

LIMITS = {"max_count": 4, "max_width": 2048, "max_height": 1536}


def test_ordinary_image_params_are_valid() -> None:
    ImageParams(prompt="a cat", width=1024, height=768, count=4, seed=0).validate(**LIMITS)
    ImageParams(prompt="a cat", width=64, height=1536, seed=2**63 - 1).validate(**LIMITS)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   \n\t"}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt"),
        ({"prompt": "a cat\x00"}, "prompt"),  # PostgreSQL cannot store NUL in text
        ({"prompt": "a \x1b[31mcat"}, "prompt"),
        ({"negative_prompt": "dull\x7f"}, "negative_prompt"),
        ({"width": 56}, "width"),
        ({"width": 2056}, "width"),
        ({"width": 1020}, "width"),
        ({"height": 1544}, "height"),  # inside MAX_SIDE, beyond this model's max_height
        ({"height": 60}, "height"),
        ({"height": 1001}, "height"),
        ({"count": 0}, "count"),
        ({"count": 5}, "count"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
    ],
)
def test_invalid_image_params_name_the_field_at_fault(
    changes: dict[str, object], field: str
) -> None:
    params = ImageParams(**{"prompt": "a cat", **changes})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as info:
        params.validate(**LIMITS)
    assert info.value.field == field


def test_the_longest_allowed_prompts_are_valid() -> None:
    ImageParams(prompt="x" * 2000, negative_prompt="y" * 2000).validate(**LIMITS)


def test_tabs_newlines_and_any_script_are_welcome_in_a_prompt() -> None:
    ImageParams(
        prompt="a cat\n\ton a mat\r\n— 猫, ネコ, 🐈", negative_prompt="blurry,\tdark"
    ).validate(**LIMITS)
