"""Issue #19's attacker findings, replayed against the running service (loopback stand-ins,
the real Postgres), one test per finding, so that each stays fixed.

Each test names its finding; each failed on the code before its fix (the docstring says
what it did then).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image, ImageDraw

from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.iap_settings import AppleSettings
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    OpenRouterSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.test_failover import grant
from tests.standins.apple import (
    APP_APPLE_ID,
    BUNDLE_ID,
    AppleSigner,
    AppStoreServerStandIn,
    notification,
    refunded,
    transaction,
)
from tests.standins.google_play import PUSH_ACCOUNT, GooglePlayStandIn
from tests.standins.google_play import google_settings as play_settings
from tests.standins.loopback import Fail, Stall
from tests.standins.openrouter import OpenRouterStandIn

pytestmark = pytest.mark.postgres

SECRET = "security-findings-" + "s" * 32


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _picture() -> bytes:
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    ImageDraw.Draw(image).ellipse((10, 10, 90, 70), fill=(220, 40, 70))
    return _png(image)


def _mask() -> bytes:
    mask = Image.new("L", (160, 120), 0)
    ImageDraw.Draw(mask).rectangle((40, 30, 99, 79), fill=255)
    return _png(mask)


PICTURE, MASK = _picture(), _mask()


def form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart form of text fields only (httpx would send them urlencoded)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def auth(user: uuid.UUID, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user, **claims)}"}


def keyed(user: uuid.UUID, key: str | None = None) -> dict[str, str]:
    return auth(user) | {"Idempotency-Key": key or str(uuid.uuid4())}


@pytest.fixture
def openrouter() -> Iterator[OpenRouterStandIn]:
    with OpenRouterStandIn() as standin:
        yield standin


async def _client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    gpu = InMemoryGpuProvider("down")
    gpu.down = True  # jobs wait: no worker captions its results while a test counts calls

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield client


def with_openrouter(
    database_url: str, tmp_path: Path, openrouter: OpenRouterStandIn, **server: Any
) -> Settings:
    """``server``: ServerSettings fields to set (``request_deadline``)."""
    return Settings(
        database=DatabaseSettings(url=database_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path, **server),
        jobs=JobSettings(poll_interval=0.02),
        openrouter=OpenRouterSettings(
            api_key=openrouter.api_key, base_url=openrouter.base_url, timeout=2.0
        ),
    )


@pytest.fixture
async def client(
    pg_url: str, tmp_path: Path, openrouter: OpenRouterStandIn
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async for c in _client(with_openrouter(pg_url, tmp_path, openrouter)):
        yield c


async def edit(
    client: AsyncTestClient[Litestar], user: uuid.UUID, key: str | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/generate/edit",
        data={"model": "sdxl-inpaint", "prompt": "a straw hat"},
        files={"image": ("p.png", PICTURE, "image/png"), "mask": ("m.png", MASK, "image/png")},
        headers=keyed(user, key),
    )


# --- paid calls only after the free checks ---------------------------------------------


async def test_enhance_from_a_user_without_credits_makes_no_paid_call(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn
) -> None:
    """Finding: ``enhance: true`` called OpenRouter before the model, size and balance
    checks: 10 submissions answered 402 made 10 paid calls."""
    user = uuid.uuid4()
    body = {"model": "flux-schnell", "prompt": "a fox", "width": 256, "height": 256}
    for _ in range(10):
        r = await client.post(
            "/v1/generate/image", json=body | {"enhance": True}, headers=keyed(user)
        )
        assert r.status_code == 402, r.text
    for wrong in ({"model": "no-such-model"}, {"width": 4096}, {"width": 100}):
        r = await client.post(
            "/v1/generate/image", json=body | wrong | {"enhance": True}, headers=keyed(user)
        )
        assert r.status_code == 422, r.text
    assert openrouter.requests == [], "a refused submission paid for an enhancement"


async def test_edits_from_a_user_without_credits_caption_nothing(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn
) -> None:
    """Finding: ``/v1/generate/edit`` captioned both uploads before the credit check."""
    user = uuid.uuid4()
    for _ in range(10):
        r = await edit(client, user)
        assert r.status_code == 402, r.text
    assert openrouter.requests == [], "a refused edit paid for captions"


async def test_a_replayed_edit_pays_for_no_second_caption(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn, pg_url: str
) -> None:
    """Finding: a replay of an edit captioned its uploads again."""
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    key = str(uuid.uuid4())
    first = await edit(client, user, key)
    assert first.status_code == 202, first.text
    paid = len(openrouter.requests)
    assert paid == 2  # the picture and the mask, once
    for _ in range(5):
        again = await edit(client, user, key)
        assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert len(openrouter.requests) == paid, "a replay paid for captions again"


async def test_a_hanging_openrouter_leaves_the_captions_out_not_the_edit(
    pg_url: str, tmp_path: Path, openrouter: OpenRouterStandIn
) -> None:
    """Finding: with OpenRouter hanging, every edit failed with 503 at the request
    deadline: its two captions ran one after the other (2 x 2 s here, past a 3 s
    deadline). They run at once under one budget now, and a late one is left out."""
    settings = with_openrouter(pg_url, tmp_path, openrouter, request_deadline=3.0)
    openrouter.inject(Stall(30), times=100)
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    async for client in _client(settings):
        started = time.monotonic()
        r = await edit(client, user)
        took = time.monotonic() - started
        assert r.status_code == 202, r.text
        assert took < 3.0
        assert len(openrouter.requests) == 2


# --- tokens ------------------------------------------------------------------------------


@pytest.fixture
async def plain(pg_url: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    async for c in _client(settings):
        yield c


async def test_an_anon_role_token_is_not_a_user(plain: AsyncTestClient[Litestar]) -> None:
    """Finding: a token with ``role: anon`` (the project's anon key's role) was served
    as a user."""
    r = await plain.get("/v1/me", headers=auth(uuid.uuid4(), role="anon"))
    assert r.status_code == 401, r.text


async def test_a_token_living_beyond_the_bound_is_refused(plain: AsyncTestClient[Litestar]) -> None:
    """Finding: no maximum token lifetime: a token minted for a year was honoured."""
    user = uuid.uuid4()
    r = await plain.get("/v1/me", headers=auth(user, ttl_seconds=365 * 24 * 3600))
    assert r.status_code == 401 and "longer than" in r.json()["detail"]
    assert (await plain.get("/v1/me", headers=auth(user, ttl_seconds=3600))).status_code == 200


async def test_jwt_library_errors_are_not_echoed(plain: AsyncTestClient[Litestar]) -> None:
    """Finding: the JWT library's error text ("Not enough segments", "Invalid header
    padding", ...) was sent to the client."""
    for token in ("a.b.c", "not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.e30.x"):
        r = await plain.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.json()["detail"] in ("malformed token", "invalid token"), r.json()


async def test_the_issuer_is_checked_where_it_can_be_derived(pg_url: str, tmp_path: Path) -> None:
    """Finding: the token issuer was not checked unless SUPABASE_JWT_ISSUER was set;
    with SUPABASE_URL it is ``<SUPABASE_URL>/auth/v1``."""
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET, url="https://project.supabase.co"),
        server=ServerSettings(data_dir=tmp_path),
    )
    user = uuid.uuid4()
    async for client in _client(settings):
        assert (await client.get("/v1/me", headers=auth(user))).status_code == 401
        other = auth(user, issuer="https://other.supabase.co/auth/v1")
        assert (await client.get("/v1/me", headers=other)).status_code == 401
        ours = auth(user, issuer="https://project.supabase.co/auth/v1")
        assert (await client.get("/v1/me", headers=ours)).status_code == 200


# --- input ---------------------------------------------------------------------------------


async def test_a_prompt_of_invisible_characters_is_refused_and_not_charged(
    plain: AsyncTestClient[Litestar], pg_url: str
) -> None:
    """Finding: a prompt of zero-width characters alone was accepted and charged."""
    user = uuid.uuid4()
    await grant(pg_url, user, 10)
    for prompt in ("\u200b\u200c\u200d", "\ufeff \u2060", "\u3164\u2800"):
        r = await plain.post(
            "/v1/generate/image",
            json={"model": "flux-schnell", "prompt": prompt, "width": 256, "height": 256},
            headers=keyed(user),
        )
        assert r.status_code == 422 and r.json()["field"] == "prompt", r.text
    me = (await plain.get("/v1/me", headers=auth(user))).json()
    assert me["credits"] == 10


async def test_problems_name_the_field_as_the_app_sends_it(
    plain: AsyncTestClient[Litestar], pg_url: str
) -> None:
    """Finding: the message said ``duration_seconds`` where ``field`` said
    ``durationSeconds``."""
    user = uuid.uuid4()
    await grant(pg_url, user, 100)
    body, content_type = form({"model": "wan-2.1", "prompt": "a wave", "durationSeconds": "99"})
    r = await plain.post("/v1/generate/video", content=body, headers=keyed(user) | content_type)
    problem = r.json()
    assert r.status_code == 422 and problem["field"] == "durationSeconds", problem
    assert "duration_seconds" not in problem["detail"] and "durationSeconds" in problem["detail"]
    r = await plain.post(
        "/v1/generate/image",
        json={"model": "flux-schnell", "prompt": "a fox", "negativePrompt": "x\x00"},
        headers=keyed(user),
    )
    assert r.status_code == 422 and r.json()["field"] == "negativePrompt", r.text


@pytest.mark.parametrize("width", ["512", 512.0, "5_12"])
async def test_integers_are_integers(
    plain: AsyncTestClient[Litestar], pg_url: str, width: object
) -> None:
    """Finding: ``"width": "512"`` and ``512.0`` were taken for the integer 512 (Litestar
    converts bodies leniently)."""
    user = uuid.uuid4()
    await grant(pg_url, user, 10)
    r = await plain.post(
        "/v1/generate/image",
        json={"model": "flux-schnell", "prompt": "a fox", "width": width, "height": 256},
        headers=keyed(user),
    )
    assert r.status_code == 422 and r.json()["field"] == "width", r.text


async def test_form_integers_are_digits_only(plain: AsyncTestClient[Litestar], pg_url: str) -> None:
    """The multipart forms' integers: ``int()`` also read "5_12", "+5" and full-width
    digits."""
    user = uuid.uuid4()
    await grant(pg_url, user, 100)
    for fps in ("1_6", "16.0", "\uff11\uff16"):
        body, content_type = form({"model": "wan-2.1", "prompt": "a wave", "fps": fps})
        r = await plain.post("/v1/generate/video", content=body, headers=keyed(user) | content_type)
        assert r.status_code == 422 and r.json()["field"] == "fps", r.text


def test_a_huge_credit_grant_is_a_clear_error(pg_url: str, tmp_path: Path) -> None:
    """Finding: ``genstudio credits grant`` of a huge amount printed a Postgres
    traceback (the ledger's integers are 32-bit)."""
    from genstudio.entrypoints.cli import grant as cli_grant

    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    user = uuid.uuid4()
    with pytest.raises(SystemExit) as caught:
        cli_grant(settings, user, 10**12)
    assert "at most 2147483647" in str(caught.value)
    assert cli_grant(settings, user, 2**31 - 1) == 2**31 - 1
    with pytest.raises(SystemExit) as caught:
        cli_grant(settings, user, 1)
    assert "over the most an account holds" in str(caught.value)


# --- the Google webhook -----------------------------------------------------------------

AUDIENCE = "https://api.genstudio.test/v1/webhooks/google"


def google_settings(pg_url: str, tmp_path: Path, play: GooglePlayStandIn, **over: Any) -> Settings:
    return Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        google=play_settings(play, audience=AUDIENCE, certs_url=over.pop("certs_url", None)),
    )


@pytest.fixture
def play() -> Iterator[GooglePlayStandIn]:
    with GooglePlayStandIn() as standin:
        yield standin


def forged_tokens(play: GooglePlayStandIn) -> list[str]:
    """What an attacker posts: no JWT, a JWT of another key under Google's key id, and
    JWTs naming key ids Google never had."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSH_ACCOUNT}
    made_up = [
        pyjwt.encode(claims | {"n": n}, other, algorithm="RS256", headers={"kid": f"kid-{n}"})
        for n in range(8)
    ]
    return ["x", "a.b.c", play.push_token(AUDIENCE, key=other), *made_up]


async def test_the_google_webhook_fetches_certificates_once_not_per_post(
    pg_url: str, tmp_path: Path, play: GooglePlayStandIn
) -> None:
    """Finding: the Google webhook fetched Google's certificates on every request (26
    unauthenticated posts made 26 outbound fetches). They are kept for their
    Cache-Control max-age; forged tokens (made-up key ids too) fetch nothing more."""
    body = play.push_body({"testNotification": {"version": "1.0"}})
    async for client in _client(google_settings(pg_url, tmp_path, play)):
        for _ in range(3):
            for token in forged_tokens(play):
                r = await client.post(
                    "/v1/webhooks/google",
                    content=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 401, r.text
        genuine = await client.post(
            "/v1/webhooks/google",
            content=body,
            headers={"Authorization": f"Bearer {play.push_token(AUDIENCE)}"},
        )
        assert genuine.status_code == 200, genuine.text
        fetches = [r for r in play.requests if r.path == "/oidc/certs"]
        assert len(fetches) == 1, f"{len(fetches)} certificate fetches for 34 posts"


async def test_the_google_webhooks_refusal_shows_no_internal_error(
    pg_url: str, tmp_path: Path, play: GooglePlayStandIn
) -> None:
    """Finding: its 401 showed internal connection errors (the certificates URL, the
    connection refused)."""
    settings = google_settings(pg_url, tmp_path, play, certs_url="http://127.0.0.1:9/certs")
    body = play.push_body({"testNotification": {"version": "1.0"}})
    async for client in _client(settings):
        for token in [play.push_token(AUDIENCE), *forged_tokens(play)]:
            r = await client.post(
                "/v1/webhooks/google", content=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code in (401, 503), r.text
            detail = r.json()["detail"]
            for leak in ("127.0.0.1", "onnect", "certs", "Errno", "Token", "segments"):
                assert leak not in detail, detail


# --- refunds before the claim ----------------------------------------------------------

PACK = "app.genstudio.credits.100"


@pytest.fixture(scope="module")
def signer() -> AppleSigner:
    return AppleSigner()


@pytest.fixture
def app_store(signer: AppleSigner) -> Iterator[AppStoreServerStandIn]:
    with AppStoreServerStandIn(signer) as standin:
        yield standin


def apple_settings(
    pg_url: str,
    tmp_path: Path,
    signer: AppleSigner,
    api: AppStoreServerStandIn | None = None,
    **over: Any,
) -> Settings:
    server: dict[str, Any] = (
        {}
        if api is None
        else {
            "api_base_url": api.url,
            "private_key": api.private_key_pem.decode(),
            "key_id": api.keys.key_id,
            "issuer_id": api.keys.issuer_id,
            "api_timeout": 1.0,
        }
    )
    apple = AppleSettings(
        root_certificates=signer.root_b64,
        bundle_id=BUNDLE_ID,
        app_apple_id=APP_APPLE_ID,
        environment=over.pop("environment", "Sandbox"),
        sandbox_in_production=over.pop("sandbox_in_production", "grant"),
        online_checks=False,
        **server,
    )
    return Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        apple=apple,
        **over,
    )


async def _refund_then_redeem(
    client: AsyncTestClient[Litestar], signer: AppleSigner
) -> tuple[uuid.UUID, str, httpx.Response]:
    user = uuid.uuid4()
    tx = transaction(product_id=PACK, user=user)
    refund, _ = notification(
        signer, "REFUND", tx=refunded(tx, at=datetime.now(UTC)), signed=datetime.now(UTC)
    )
    told = await client.post("/v1/webhooks/apple", json={"signedPayload": refund})
    assert told.status_code == 200, told.text
    assert told.json()["actions"] == ["kept:before_claim"]
    claim = await client.post(
        "/v1/purchases/apple", json={"signedTransaction": signer.sign(tx)}, headers=auth(user)
    )
    return user, signer.sign(tx), claim


async def test_an_apple_refund_before_the_claim_is_kept_and_refuses_it(
    pg_url: str, tmp_path: Path, signer: AppleSigner, app_store: AppStoreServerStandIn
) -> None:
    """Finding: a REFUND notification for a transaction not yet seen was answered
    ``unknown_transaction`` and forgotten; posting the purchase's JWS afterwards granted
    the credits (keep the JWS, get a refund, redeem), with the App Store Server API not
    configured, failing, or answering 404."""
    for api, fault in ((None, None), (app_store, Fail(500)), (app_store, None)):
        if api is not None:
            api.reset()
            if fault is not None:
                api.inject(fault, times=100)
        async for client in _client(apple_settings(pg_url, tmp_path, signer, api)):
            user, _, claim = await _refund_then_redeem(client, signer)
            assert claim.status_code == 400, claim.text
            assert claim.json()["code"] == "invalid_purchase"
            assert claim.json()["field"] == "signedTransaction"
            me = (await client.get("/v1/me", headers=auth(user))).json()
            assert me["credits"] == 0


async def test_a_reversal_after_an_early_refund_lets_the_claim_through(
    pg_url: str, tmp_path: Path, signer: AppleSigner
) -> None:
    """The kept refund is the latest news only: REFUND_REVERSED after it (the store gave
    the purchase back) lets the claim grant the pack."""
    async for client in _client(apple_settings(pg_url, tmp_path, signer)):
        user = uuid.uuid4()
        tx = transaction(product_id=PACK, user=user)
        earlier = datetime.now(UTC) - timedelta(minutes=5)
        refund, _ = notification(signer, "REFUND", tx=refunded(tx, at=earlier), signed=earlier)
        reversal, _ = notification(signer, "REFUND_REVERSED", tx=tx, signed=datetime.now(UTC))
        # delivered out of order: the reversal first, then the older refund
        for payload in (reversal, refund):
            r = await client.post("/v1/webhooks/apple", json={"signedPayload": payload})
            assert r.status_code == 200, r.text
        claim = await client.post(
            "/v1/purchases/apple", json={"signedTransaction": signer.sign(tx)}, headers=auth(user)
        )
        assert claim.status_code == 200, claim.text
        assert claim.json()["creditsGranted"] == 100


async def test_a_google_refund_before_the_claim_refuses_it(
    pg_url: str, tmp_path: Path, play: GooglePlayStandIn
) -> None:
    """The same hole on Google: a voided purchase not yet claimed was
    ``unknown_transaction``; the token, still ``purchaseState`` 0 at
    ``purchases.products``, was then redeemed."""
    user, token = uuid.uuid4(), f"tok-{uuid.uuid4()}"
    play.set_product(token, "credits_550", user)
    voided = {
        "voidedPurchaseNotification": {
            "purchaseToken": token,
            "orderId": f"GPA.{uuid.uuid4().int % 10**16}",
            "productType": 2,
            "refundType": 1,
        }
    }
    async for client in _client(google_settings(pg_url, tmp_path, play)):
        told = await client.post(
            "/v1/webhooks/google",
            content=play.push_body(voided),
            headers={"Authorization": f"Bearer {play.push_token(AUDIENCE)}"},
        )
        assert told.status_code == 200 and told.json()["actions"] == ["kept:before_claim"]
        claim = await client.post(
            "/v1/purchases/google",
            json={"productId": "credits_550", "purchaseToken": token},
            headers=auth(user),
        )
        assert claim.status_code == 400 and claim.json()["field"] == "purchaseToken", claim.text
        assert (await client.get("/v1/me", headers=auth(user))).json()["credits"] == 0


# --- Apple environments ------------------------------------------------------------------


def environment_of(pg_url: str, transaction_id: str) -> object:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT environment FROM store_transactions WHERE store = 'apple'"
            " AND transaction_id = %s",
            (transaction_id,),
        ).fetchone()
    return None if row is None else row[0]


async def test_production_accepts_sandbox_purchases_and_records_the_environment(
    pg_url: str, tmp_path: Path, signer: AppleSigner
) -> None:
    """Finding: with ``APPLE_ENVIRONMENT=Production``, Sandbox transactions were refused,
    but App Review tests production builds with Sandbox purchases. Verified against
    production first, then the sandbox; the environment is kept on the transaction."""
    settings = apple_settings(pg_url, tmp_path, signer, environment="Production")
    async for client in _client(settings):
        user = uuid.uuid4()
        for environment in ("Sandbox", "Production"):
            tx = transaction(product_id=PACK, user=user, environment=environment)
            r = await client.post(
                "/v1/purchases/apple",
                json={"signedTransaction": signer.sign(tx)},
                headers=auth(user),
            )
            assert r.status_code == 200, r.text
            assert r.json()["creditsGranted"] == 100
            assert environment_of(pg_url, tx["transactionId"]) == environment
        news, _ = notification(signer, "TEST", environment="Sandbox")
        r = await client.post("/v1/webhooks/apple", json={"signedPayload": news})
        assert r.status_code == 200, r.text
        foreign = transaction(product_id=PACK, user=user, environment="Xcode")
        r = await client.post(
            "/v1/purchases/apple",
            json={"signedTransaction": signer.sign(foreign)},
            headers=auth(user),
        )
        assert r.status_code == 400, r.text


async def test_sandbox_purchases_can_be_refused_in_production(
    pg_url: str, tmp_path: Path, signer: AppleSigner
) -> None:
    """``APPLE_SANDBOX_IN_PRODUCTION=refuse``: a Sandbox purchase grants nothing there."""
    settings = apple_settings(
        pg_url, tmp_path, signer, environment="Production", sandbox_in_production="refuse"
    )
    async for client in _client(settings):
        user = uuid.uuid4()
        tx = transaction(product_id=PACK, user=user, environment="Sandbox")
        r = await client.post(
            "/v1/purchases/apple", json={"signedTransaction": signer.sign(tx)}, headers=auth(user)
        )
        assert r.status_code == 400 and r.json()["code"] == "invalid_purchase", r.text
        assert (await client.get("/v1/me", headers=auth(user))).json()["credits"] == 0


# --- database privileges -------------------------------------------------------------------


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_touch_upload_intents_or_call_genstudio_refuse(
    pg_url: str, role: str
) -> None:
    """Finding: ``upload_intents`` lacked the usual revoke (``anon`` could TRUNCATE it
    on Supabase, whose default privileges give the API roles every new table), and
    ``genstudio_refuse()`` was executable by anyone (migration 0400)."""
    from tests.integration.test_supabase_schema import acting_as

    with psycopg.connect(pg_url, autocommit=True) as db:
        for statement in (
            "TRUNCATE upload_intents",
            "SELECT * FROM upload_intents",
            "INSERT INTO upload_intents (storage_key, user_id) VALUES ('k', gen_random_uuid())",
            "SELECT * FROM early_revocations",
            "SELECT genstudio_refuse('P0001', 'x')",
        ):
            with acting_as(db, role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
