"""The testing kit (genstudio.testing, issue #23) does what docs/testing-kit.md says:
its fixtures, the scripted GPU over genstudio's worker, the user builders, the HTTP
app with its token factory and the store stand-ins wired in, and a plugin whose
import costs nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from genstudio.adapters.memory import FakeClock
from genstudio.core.model.jobs import FailureReason, JobStatus
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.ports.gpu import Completed, Failed, Pending, ProviderUnavailable
from genstudio.testing import plugin
from genstudio.testing.application import MemoryApplication, Users
from genstudio.testing.contracts.gpu import image_request
from genstudio.testing.gpu import ScriptedGpu
from genstudio.testing.http import MemoryHttpApp
from genstudio.testing.stores import AppleKit, GoogleKit

# -- the scripted GPU ------------------------------------------------------------------------


async def test_scripts_are_taken_in_order_then_the_standing_one() -> None:
    gpu = ScriptedGpu().fails(progress=(40,)).succeeds(progress=(25, 50, 75))
    gpu.hangs(times=None)
    first, second, third = [await gpu.submit(image_request()) for _ in range(3)]

    started, ended = [await gpu.poll(first) for _ in range(2)]
    assert started == Pending(progress=40, started=True)
    assert isinstance(ended, Failed) and ended.error.reason is FailureReason.INFRASTRUCTURE
    polls = [await gpu.poll(second) for _ in range(4)]
    assert [p.progress for p in polls[:3] if isinstance(p, Pending)] == [25, 50, 75]
    assert isinstance(polls[3], Completed)
    assert all(isinstance(p, Pending) for p in [await gpu.poll(third) for _ in range(50)])
    assert gpu.running == [third]


async def test_a_failure_says_its_reason_and_message_and_down_refuses_every_call() -> None:
    gpu = ScriptedGpu().fails(FailureReason.CONTENT, "refused")
    job = await gpu.submit(image_request())
    status = await gpu.poll(job)
    assert isinstance(status, Failed)
    assert (status.error.reason, status.error.message) == (FailureReason.CONTENT, "refused")

    gpu.down = True
    with pytest.raises(ProviderUnavailable):
        await gpu.submit(image_request())
    assert not (await gpu.health()).healthy


def test_progress_is_a_percentage() -> None:
    with pytest.raises(ValueError, match="percentages"):
        ScriptedGpu().succeeds(progress=(50, 120))


# -- the application -------------------------------------------------------------------------


async def test_a_hanging_gpu_times_the_attempt_out_on_the_fake_clock_and_it_is_retried(
    genstudio_app: MemoryApplication, genstudio_gpu: ScriptedGpu, genstudio_users: Users
) -> None:
    genstudio_gpu.hangs(progress=(40,))
    user = await genstudio_users.with_credits(5)
    start = genstudio_app.clock.now()

    submitted = await genstudio_app.submit_image(user)
    ran = await genstudio_app.run_jobs()

    assert ran[0].error is not None and ran[0].error.reason is FailureReason.TIMEOUT
    assert genstudio_gpu.cancelled == ["scripted-1"]  # the timed-out attempt, cancelled
    assert submitted.job_id is not None
    job = await genstudio_app.job(submitted.job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert genstudio_app.clock.now() - start >= timedelta(seconds=900)  # the image timeout
    assert await genstudio_app.balance(user) == 4


async def test_while_the_gpu_is_down_jobs_wait_and_no_attempt_is_spent(
    genstudio_app: MemoryApplication, genstudio_gpu: ScriptedGpu, genstudio_users: Users
) -> None:
    genstudio_gpu.down = True
    user = await genstudio_users.with_credits(5)
    submitted = await genstudio_app.submit_image(user)
    assert submitted.job_id is not None

    await genstudio_app.run_due()
    with pytest.raises(AssertionError, match=r"ScriptedGpu\.down"):
        await genstudio_app.run_jobs(max_rounds=5)

    job = await genstudio_app.job(submitted.job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    genstudio_gpu.down = False
    await genstudio_app.run_jobs()
    assert (await genstudio_app.job(submitted.job_id)).status is JobStatus.SUCCEEDED


async def test_a_subscribed_user_has_the_plan_tier_and_its_first_allowance(
    genstudio_app: MemoryApplication, genstudio_users: Users
) -> None:
    user = await genstudio_users.subscribed("premium_monthly")

    async with genstudio_app.uow_factory() as uow:
        profile = await uow.profiles.get(user)
    assert profile is not None and profile.subscription_tier is SubscriptionTier.PREMIUM
    assert await genstudio_app.balance(user) == 1500
    with pytest.raises(ValueError, match="not a plan"):
        await genstudio_users.subscribed("credits_100")


def test_the_fixtures_share_one_clock_gpu_and_store(
    genstudio_app: MemoryApplication,
    genstudio_clock: FakeClock,
    genstudio_gpu: ScriptedGpu,
    genstudio_users: Users,
) -> None:
    assert genstudio_app.clock is genstudio_clock
    assert genstudio_app.gpu is genstudio_gpu
    assert genstudio_app.users is genstudio_users


# -- over HTTP ------------------------------------------------------------------------------


async def test_tokens_are_signed_as_the_app_checks_them_and_the_service_role_is_an_operator(
    genstudio_http: MemoryHttpApp,
) -> None:
    user = await genstudio_http.app.users.with_credits(3)
    client = genstudio_http.client

    me = await client.get("/v1/me", headers=genstudio_http.headers(user))
    assert me.status_code == 200 and me.json()["credits"] == 3
    assert (await client.get("/v1/me")).status_code == 401
    admin = "/v1/admin/dead-letters"
    assert (await client.get(admin, headers=genstudio_http.headers(user))).status_code == 403
    operator = genstudio_http.headers(uuid.uuid4(), role="service_role")
    assert (await client.get(admin, headers=operator)).status_code == 200


async def test_an_http_job_runs_when_the_test_says_with_the_progress_the_gpu_reports(
    genstudio_http: MemoryHttpApp, genstudio_gpu: ScriptedGpu
) -> None:
    genstudio_gpu.hangs(progress=(30, 60))
    user = await genstudio_http.app.users.with_credits(3)
    me = genstudio_http.headers(user) | {"Idempotency-Key": "one"}
    job_id = (
        await genstudio_http.client.post(
            "/v1/generate/image", json={"prompt": "a fox", "model": "flux-schnell"}, headers=me
        )
    ).json()["id"]

    assert (await genstudio_http.app.job(uuid.UUID(job_id))).status is JobStatus.QUEUED
    await genstudio_http.run_jobs()

    body = (await genstudio_http.client.get(f"/v1/generate/{job_id}", headers=me)).json()
    assert (body["status"], body["attempts"], body["progress"]) == ("succeeded", 2, 100)
    [asset] = body["assets"]
    assert asset["contentType"] == "image/png"


async def test_apple_purchases_verify_against_the_kits_test_chain(
    genstudio_http: MemoryHttpApp, genstudio_apple: AppleKit
) -> None:
    user = await genstudio_http.app.users.new()
    signed, _ = genstudio_apple.transaction("app.genstudio.credits.100", user)

    bought = await genstudio_http.client.post(
        "/v1/purchases/apple",
        json={"signedTransaction": signed},
        headers=genstudio_http.headers(user),
    )

    assert bought.status_code == 200, bought.text
    assert (bought.json()["creditsGranted"], bought.json()["balance"]) == (100, 100)
    forged, _ = AppleKit().transaction("app.genstudio.credits.100", user)  # another chain
    refused = await genstudio_http.client.post(
        "/v1/purchases/apple",
        json={"signedTransaction": forged},
        headers=genstudio_http.headers(user),
    )
    assert refused.status_code == 400


async def test_google_purchases_read_from_the_play_stand_in(
    genstudio_http: MemoryHttpApp, genstudio_google: GoogleKit
) -> None:
    user = await genstudio_http.app.users.new()
    token = genstudio_google.product("credits_550", user)

    bought = await genstudio_http.client.post(
        "/v1/purchases/google",
        json={"productId": "credits_550", "purchaseToken": token},
        headers=genstudio_http.headers(user),
    )

    assert bought.status_code == 200, bought.text
    assert bought.json()["balance"] == 550
    assert genstudio_google.play.consumed == [token]  # told after the commit


# -- the plugin ------------------------------------------------------------------------------


def test_every_fixture_of_the_plugin_is_named_genstudio() -> None:
    names = [
        getattr(value, "name", name)
        for name, value in vars(plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
    ]
    assert len(names) == 9
    assert all(name.startswith("genstudio_") for name in names), names


def test_loading_the_plugin_imports_nothing_of_genstudio_or_its_frameworks() -> None:
    code = (
        "import json, sys; import genstudio.testing.plugin; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('genstudio', 'litestar', 'sqlalchemy', 'httpx', 'msgspec'))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert loaded == ["genstudio", "genstudio.testing", "genstudio.testing.plugin"]
