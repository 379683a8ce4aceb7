"""The GpuProvider contract over the Runpod and Modal adapters, against their loopback
stand-ins and against our own GPU worker (gpu_worker/: the Modal app's endpoints served
locally, the Runpod handler in runpod-python's worker loop behind Runpod's platform), so
the adapters and the worker cannot drift apart; then every failure knob, and what only
one of them does.

The contract's checks are the exported suite's (genstudio.testing.contracts.gpu, what an
outside adapter runs too): ``TestRemoteGpuContract`` runs them over this module's ``gpu``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from genstudio.adapters.gpu_http import Backoff
from genstudio.adapters.gpu_modal import ModalProvider, make_modal_provider
from genstudio.adapters.gpu_runpod import RunpodProvider, make_runpod_provider, parse_endpoints
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import PNG_SIGNATURE, png_dimensions
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    Pending,
    ProviderUnavailable,
)
from genstudio.testing.contracts.gpu import GpuProviderContract, image_request, settle
from tests.contract.conftest import MODAL_ID, MODAL_SECRET, RUNPOD_KEY
from tests.standins.gpu_jobs import GpuKnobs, GpuStandinBase
from tests.standins.modal import ModalStandin
from tests.standins.modal_worker import ModalWorkerStandin
from tests.standins.runpod import RunpodStandin

TIMEOUT = 2.0  # a call under two parallel test workers may take a while; the slow knob is 3 s
FAST_BACKOFF = Backoff(retries=3, base=0.02, cap=0.1, max_retry_after=2.0)
Kind = Literal["runpod", "modal"]
#: who answers: the stand-in acting the worker out, or our GPU worker (gpu_worker/)
SIDES = ["standin", "worker"]
AnyModal = ModalStandin | ModalWorkerStandin


@pytest.fixture(scope="module")
def runpod_standin() -> Iterator[RunpodStandin]:
    standin = RunpodStandin(api_key=RUNPOD_KEY, endpoints={"ep-flux", "ep-sdxl"})
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def modal_standin() -> Iterator[ModalStandin]:
    standin = ModalStandin(token_id=MODAL_ID, token_secret=MODAL_SECRET)
    standin.start()
    yield standin
    standin.stop()


def side_of(request: pytest.FixtureRequest, kind: str, side: str) -> GpuStandinBase:
    """The module's stand-in of ``kind``, or our worker (``runpod_worker``,
    ``modal_worker``: tests/contract/conftest.py), started on first use."""
    name = f"{kind}_{'standin' if side == 'standin' else 'worker'}"
    standin = request.getfixturevalue(name)
    assert isinstance(standin, GpuStandinBase)
    return standin


@pytest.fixture(params=SIDES)
def runpod_side(request: pytest.FixtureRequest) -> RunpodStandin:
    """Runpod's platform acting the worker out, or running our worker."""
    standin = side_of(request, "runpod", request.param)
    assert isinstance(standin, RunpodStandin)
    return standin


@pytest.fixture(params=SIDES)
def modal_side(request: pytest.FixtureRequest) -> AnyModal:
    """The Modal app's endpoints acted out, or ours served locally."""
    standin = side_of(request, "modal", request.param)
    assert isinstance(standin, ModalStandin | ModalWorkerStandin)
    return standin


def fresh(standin: GpuStandinBase, **knobs: Any) -> GpuStandinBase:
    """Reset the knobs (a new job queues briefly, then runs for a while) and records."""
    standin.knobs = GpuKnobs(**({"queue_seconds": 0.02, "job_seconds": 0.2} | knobs))
    standin.calls.clear()
    return standin


def runpod_provider(standin: RunpodStandin, **overrides: Any) -> RunpodProvider:
    options: dict[str, Any] = {
        "base_url": standin.base_url,
        "api_key": RUNPOD_KEY,
        "endpoints": {"preview": "ep-flux", "sdxl-model": "ep-sdxl"},
        "timeout": TIMEOUT,
        "rate_limit": None,
        "backoff": FAST_BACKOFF,
    }
    return RunpodProvider(**(options | overrides))


def modal_provider(standin: AnyModal, **overrides: Any) -> ModalProvider:
    options: dict[str, Any] = {
        "base_url": standin.base_url,
        "token_id": MODAL_ID,
        "token_secret": MODAL_SECRET,
        "timeout": TIMEOUT,
        "backoff": FAST_BACKOFF,
    }
    return ModalProvider(**(options | overrides))


def provider_for(standin: GpuStandinBase, **overrides: Any) -> RunpodProvider | ModalProvider:
    """The adapter that speaks to ``standin``."""
    if isinstance(standin, RunpodStandin):
        return runpod_provider(standin, **overrides)
    assert isinstance(standin, ModalStandin | ModalWorkerStandin)
    return modal_provider(standin, **overrides)


@dataclass
class Remote:
    kind: str  # "runpod" or "modal"
    standin: GpuStandinBase
    provider: RunpodProvider | ModalProvider

    def make(self, **overrides: Any) -> RunpodProvider | ModalProvider:
        return provider_for(self.standin, **overrides)

    @property
    def credentials_setting(self) -> str:
        return "RUNPOD_API_KEY" if self.kind == "runpod" else "MODAL_TOKEN_ID"


@pytest.fixture(params=[f"{k}-{s}" for k in ("runpod", "modal") for s in SIDES])
async def remote(request: pytest.FixtureRequest) -> AsyncIterator[Remote]:
    kind, side = request.param.split("-")
    standin = side_of(request, kind, side)
    fresh(standin)
    r = Remote(kind, standin, provider_for(standin))
    yield r
    standin.cancel_all()  # leave nothing running for the next test
    await r.provider.aclose()


@pytest.fixture(
    params=[
        *(f"{k}-standin-{o}" for k in ("runpod", "modal") for o in ("base64", "url")),
        # our worker's URL outputs are checked by the output, size-cap and training tests
        *(f"{k}-worker-base64" for k in ("runpod", "modal")),
    ]
)
async def gpu(request: pytest.FixtureRequest) -> AsyncIterator[GpuProvider]:
    """The suite's fixture name: every contract check runs over each adapter, each side
    (stand-in, our worker) and, on the stand-ins, each way outputs travel."""
    kind, side, output = request.param.split("-")
    standin = fresh(side_of(request, kind, side), output=output)
    provider = provider_for(standin)
    yield provider
    standin.cancel_all()
    await provider.aclose()


class TestRemoteGpuContract(GpuProviderContract):
    """The exported GpuProvider contract over every remote adapter of this module."""

    @pytest.fixture
    def gpu(self, gpu: GpuProvider) -> GpuProvider:
        return gpu  # the module's fixture of that name: its params are the adapters


#: a fault the platform acts out before any worker is reached (its edge's 5xx, 429s, slow
#: answers, nothing listening): the stand-ins alone, our worker adds nothing there
platform_only = pytest.mark.parametrize(
    "remote", ["runpod-standin", "modal-standin"], indirect=True
)


# -- outputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["base64", "url"])
async def test_outputs_come_inline_from_base64_or_by_url_and_fetch_returns_the_png(
    remote: Remote, output: Literal["base64", "url"]
) -> None:
    remote.standin.knobs.output = output

    status, _ = await settle(remote.provider, await remote.provider.submit(image_request()))

    assert isinstance(status, Completed)
    (out,) = status.outputs
    if output == "base64":
        assert out.data is not None and out.url is None
    else:
        assert out.data is None and out.url is not None and "/files/" in out.url
    data = await remote.provider.fetch(out)
    assert data.startswith(PNG_SIGNATURE)
    assert png_dimensions(data) == (64, 64)


async def test_fetching_an_output_over_the_size_cap_is_refused(remote: Remote) -> None:
    remote.standin.knobs.output = "url"
    small = remote.make(max_output_bytes=100)
    status, _ = await settle(small, await small.submit(image_request()))
    assert isinstance(status, Completed)

    with pytest.raises(ProviderUnavailable, match="limit"):
        await small.fetch(status.outputs[0])
    await small.aclose()


async def test_a_progressing_job_reports_queued_then_started_with_rising_progress(
    remote: Remote,
) -> None:
    remote.standin.knobs.queue_seconds = 0.1
    remote.standin.knobs.job_seconds = 0.3

    status, pendings = await settle(remote.provider, await remote.provider.submit(image_request()))

    assert isinstance(status, Completed)
    assert not pendings[0].started
    started = [p.progress for p in pendings if p.started]
    assert started and started == sorted(started) and started[-1] > 0


# -- failures of the service ----------------------------------------------------------------


@platform_only
async def test_a_500_makes_every_call_provider_unavailable(remote: Remote) -> None:
    provider_job_id = await remote.provider.submit(image_request())
    remote.standin.knobs.status_code = 500

    with pytest.raises(ProviderUnavailable, match="500"):
        await remote.provider.submit(image_request())
    with pytest.raises(ProviderUnavailable, match="500"):
        await remote.provider.poll(provider_job_id)
    await remote.provider.cancel(provider_job_id)  # best effort: no error
    health = await remote.provider.health()
    assert not health.healthy
    assert "500" in health.detail


@platform_only
async def test_a_slow_answer_is_provider_unavailable_within_the_timeout(remote: Remote) -> None:
    remote.standin.knobs.delay = 3.0
    began = time.monotonic()

    with pytest.raises(ProviderUnavailable, match="timed out"):
        await remote.provider.submit(image_request())

    assert time.monotonic() - began < TIMEOUT + 0.9


@platform_only
async def test_a_connection_refused_is_provider_unavailable(remote: Remote) -> None:
    with socket_closed_port() as port:
        provider = remote.make(base_url=f"http://127.0.0.1:{port}/v2")
        with pytest.raises(ProviderUnavailable, match="ConnectError"):
            await provider.submit(image_request())
        await provider.aclose()


@platform_only
async def test_429s_are_retried_after_their_retry_after_then_succeed(remote: Remote) -> None:
    remote.standin.knobs.rate_limited = 2
    remote.standin.knobs.retry_after = 0.15

    provider_job_id = await remote.provider.submit(image_request())

    assert provider_job_id.startswith(f"{remote.kind}-")
    submits = [c for c in remote.standin.calls if c[0] == "POST"]
    assert [c[2] for c in submits] == [429, 429, 200]
    gaps = [b[3] - a[3] for a, b in itertools.pairwise(submits)]
    assert all(gap >= 0.15 for gap in gaps), gaps


@platform_only
async def test_429s_without_retry_after_back_off_exponentially(remote: Remote) -> None:
    remote.standin.knobs.rate_limited = 3
    remote.standin.knobs.retry_after = None
    provider = remote.make(backoff=Backoff(retries=3, base=0.05, cap=1.0))

    await provider.submit(image_request())

    times = [c[3] for c in remote.standin.calls if c[0] == "POST"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # equal jitter: attempt n waits between base*2^n/2 and base*2^n
    for n, gap in enumerate(gaps):
        assert gap >= 0.05 * 2**n / 2, gaps
    await provider.aclose()


@platform_only
async def test_429_for_ever_is_provider_unavailable_after_the_bounded_retries(
    remote: Remote,
) -> None:
    remote.standin.knobs.rate_limited = -1
    remote.standin.knobs.retry_after = 0.01

    with pytest.raises(ProviderUnavailable, match="429"):
        await remote.provider.submit(image_request())

    assert remote.standin.statuses() == [429] * (FAST_BACKOFF.retries + 1)


@platform_only
async def test_a_retry_after_longer_than_worth_waiting_fails_at_once(remote: Remote) -> None:
    remote.standin.knobs.rate_limited = -1
    remote.standin.knobs.retry_after = 120

    with pytest.raises(ProviderUnavailable, match="retry after 120s"):
        await remote.provider.submit(image_request())

    assert remote.standin.statuses() == [429]


async def test_wrong_credentials_are_provider_unavailable_naming_the_setting(
    remote: Remote,
) -> None:
    wrong = (
        remote.make(api_key="nope") if remote.kind == "runpod" else remote.make(token_secret="nope")
    )

    with pytest.raises(ProviderUnavailable, match="401") as refused:
        await wrong.submit(image_request())

    assert remote.credentials_setting in str(refused.value)
    assert not (await wrong.health()).healthy
    await wrong.aclose()


# -- failures of the job --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_with", "reason"),
    [
        ("content", FailureReason.CONTENT),
        ("infrastructure", FailureReason.INFRASTRUCTURE),
        ("timeout", FailureReason.TIMEOUT),
    ],
)
async def test_a_failed_job_says_why(
    remote: Remote,
    fail_with: Literal["content", "infrastructure", "timeout"],
    reason: FailureReason,
) -> None:
    remote.standin.knobs.fail_with = fail_with

    status, _ = await settle(remote.provider, await remote.provider.submit(image_request()))

    assert isinstance(status, Failed)
    assert status.error.reason is reason
    assert status.error.message


async def test_a_stuck_job_stays_pending_until_cancelled(remote: Remote) -> None:
    remote.standin.knobs.stuck = True
    provider_job_id = await remote.provider.submit(image_request())
    await asyncio.sleep(0.3)
    assert isinstance(await remote.provider.poll(provider_job_id), Pending)

    await remote.provider.cancel(provider_job_id)

    assert isinstance(await remote.provider.poll(provider_job_id), Cancelled)


async def test_health_counts_queued_and_running_jobs(remote: Remote) -> None:
    remote.standin.knobs.stuck = True
    for _ in range(2):
        await remote.provider.submit(image_request())
    remote.standin.knobs.queue_seconds = 30
    await remote.provider.submit(image_request())
    await asyncio.sleep(0.05)

    health = await remote.provider.health()

    assert health.healthy
    assert (health.queued, health.running) >= (1, 2)


# -- Runpod only ------------------------------------------------------------------------------


class WebhookReceiver:
    """Our webhook endpoint's stand-in: records each POST's query and body."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, list[str]], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append((parse_qs(urlsplit(self.path).query), body))
                receiver.arrived.set()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/webhooks/runpod"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


async def test_runpod_run_sends_the_documented_input_policy_and_webhook(
    runpod_side: RunpodStandin, webhook: WebhookReceiver
) -> None:
    runpod_standin = fresh(runpod_side)
    assert isinstance(runpod_standin, RunpodStandin)
    provider = runpod_provider(
        runpod_standin, webhook_url=f"{webhook.url}?token=s3cret", execution_timeout_ms=90_000
    )
    request = image_request("a red fox", width=128, height=72, count=2, seed=42)

    provider_job_id = await provider.submit(request)

    body = runpod_standin.run_bodies[-1]
    assert body["input"] == {
        "kind": "image",
        "prompt": "a red fox",
        "negative_prompt": "",
        "width": 128,
        "height": 72,
        "num_outputs": 2,
        "seed": 42,
        "model": "preview",
        "job_id": str(request.job_id),
    }
    assert body["policy"] == {"executionTimeout": 90_000}
    query = parse_qs(urlsplit(body["webhook"]).query)
    assert query == {"token": ["s3cret"], "job": [str(request.job_id)]}
    assert provider_job_id.startswith("runpod-ep-flux:")

    assert await asyncio.to_thread(webhook.arrived.wait, 5)
    (got_query, got_body), *_ = webhook.received
    assert got_query["job"] == [str(request.job_id)]
    assert b'"COMPLETED"' in got_body
    await provider.aclose()


async def test_runpod_a_dropped_webhook_still_finishes_by_polling(
    runpod_standin: RunpodStandin, webhook: WebhookReceiver
) -> None:
    fresh(runpod_standin, drop_webhooks=True)
    provider = runpod_provider(runpod_standin, webhook_url=f"{webhook.url}?token=t")

    status, _ = await settle(provider, await provider.submit(image_request()))

    assert isinstance(status, Completed)
    await asyncio.sleep(0.1)
    assert webhook.received == []
    await provider.aclose()


async def test_runpod_routes_each_model_to_its_endpoint_and_refuses_an_unrouted_one(
    runpod_side: RunpodStandin,
) -> None:
    runpod_standin = runpod_side
    fresh(runpod_standin)
    provider = runpod_provider(runpod_standin)
    sdxl = GpuRequest(
        job_id=uuid.uuid4(), provider_model="sdxl-model", params=image_request().params
    )

    provider_job_id = await provider.submit(sdxl)

    assert provider_job_id.startswith("runpod-ep-sdxl:")
    assert isinstance((await settle(provider, provider_job_id))[0], Completed)
    other = GpuRequest(job_id=uuid.uuid4(), provider_model="other", params=sdxl.params)
    with pytest.raises(ProviderUnavailable, match="RUNPOD_ENDPOINTS"):
        await provider.submit(other)
    catch_all = runpod_provider(runpod_standin, endpoints={"*": "ep-flux"})
    assert (await catch_all.submit(other)).startswith("runpod-ep-flux:")
    await provider.aclose()
    await catch_all.aclose()


async def test_runpod_respects_its_per_endpoint_rate_limit(runpod_standin: RunpodStandin) -> None:
    fresh(runpod_standin)
    provider = runpod_provider(runpod_standin, rate_limit=20.0)
    provider_job_id = await provider.submit(image_request())
    began = time.monotonic()

    await asyncio.gather(*(provider.poll(provider_job_id) for _ in range(30)))

    # a bucket of 20 tokens refilling at 20/s: 31 calls need at least (31 - 20) / 20 s
    assert time.monotonic() - began >= 0.5
    await provider.aclose()


async def test_runpod_health_reads_every_endpoint(runpod_standin: RunpodStandin) -> None:
    fresh(runpod_standin)
    provider = runpod_provider(runpod_standin)

    health = await provider.health()

    assert health.healthy
    assert "ep-flux" in health.detail and "ep-sdxl" in health.detail
    assert sorted(p for _, p, _, _ in runpod_standin.calls) == [
        "/v2/ep-flux/health",
        "/v2/ep-sdxl/health",
    ]
    await provider.aclose()


def test_runpod_endpoints_setting_maps_catalog_ids_to_provider_models() -> None:
    assert parse_endpoints("flux-schnell=abc123, sdxl=def456,") == {
        "flux-schnell": "abc123",
        "sdxl": "def456",
    }
    with pytest.raises(ValueError):
        parse_endpoints("flux-schnell")
    with pytest.raises(ValueError):
        parse_endpoints("a=1,a=2")

    provider = make_runpod_provider(
        api_key="k",
        endpoints="flux-schnell=abc123,*=anything1",
        catalog=DEFAULT_CATALOG,
        public_url="https://api.example.com/",
        webhook_secret="s3",
        client=httpx.AsyncClient(),
    )

    assert provider.endpoints == {
        "black-forest-labs/FLUX.1-schnell": "abc123",
        "*": "anything1",
    }
    assert provider.webhook_url == "https://api.example.com/v1/webhooks/runpod?token=s3"
    no_hook = make_runpod_provider(api_key="k", endpoints={"*": "e"})
    assert no_hook.webhook_url is None


# -- Modal only -------------------------------------------------------------------------------


async def test_modal_an_expired_result_is_an_infrastructure_failure(
    modal_side: AnyModal,
) -> None:
    fresh(modal_side, expire_results=True, queue_seconds=0, job_seconds=0)
    provider = modal_provider(modal_side)

    status, _ = await settle(provider, await provider.submit(image_request()))

    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.INFRASTRUCTURE
    assert "expired" in status.error.message
    await provider.aclose()


async def test_modal_submit_sends_the_worker_input_with_proxy_auth(
    modal_side: AnyModal,
) -> None:
    modal_standin = modal_side
    fresh(modal_standin)
    provider = make_modal_provider(
        base_url=modal_standin.base_url + "/",
        token_id=MODAL_ID,
        token_secret=MODAL_SECRET,
        timeout=TIMEOUT,
    )
    request = image_request("a blue whale", count=3)

    provider_job_id = await provider.submit(request)

    assert provider_job_id.startswith("modal-fc-")
    body = modal_standin.submit_bodies[-1]
    assert body["prompt"] == "a blue whale"
    assert body["num_outputs"] == 3
    assert body["job_id"] == str(request.job_id)
    await provider.aclose()


# -- helpers ----------------------------------------------------------------------------------


class socket_closed_port:
    """A loopback port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
