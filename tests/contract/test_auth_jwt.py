"""Supabase Auth JWT verification: HS256 with the project secret, ES256 and RS256
through a JWKS served on loopback, and every way a token must be refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from genstudio.adapters.supabase.auth import SupabaseJwtVerifier, mint_token
from genstudio.core.model.errors import Unauthorized

SECRET = "super-secret-jwt-token-with-at-least-32-characters"
ISSUER = "https://project.supabase.co/auth/v1"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": "ada@example.com",
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


async def refused(verifier: SupabaseJwtVerifier, token: str, *, says: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert says in caught.value.message


# --- HS256 ------------------------------------------------------------------------------


@pytest.fixture
def verifier() -> SupabaseJwtVerifier:
    return SupabaseJwtVerifier(secret=SECRET, issuer=ISSUER)


async def test_a_valid_token_gives_its_user(verifier: SupabaseJwtVerifier) -> None:
    payload = claims()
    principal = await verifier.verify(hs256(payload))
    assert principal.user_id == uuid.UUID(payload["sub"])
    assert principal.email == "ada@example.com"
    assert principal.role == "authenticated"
    assert not principal.is_service


async def test_the_role_claim_is_carried_over(verifier: SupabaseJwtVerifier) -> None:
    principal = await verifier.verify(hs256(claims(role="service_role", email=None)))
    assert principal.is_service
    assert principal.email is None


async def test_a_minted_token_verifies() -> None:
    user_id = uuid.uuid4()
    token = mint_token(SECRET, user_id=user_id, email="bo@example.com", issuer=ISSUER)
    principal = await SupabaseJwtVerifier(secret=SECRET, issuer=ISSUER).verify(token)
    assert principal.user_id == user_id
    assert principal.email == "bo@example.com"


async def test_an_expired_token_is_refused(verifier: SupabaseJwtVerifier) -> None:
    now = int(time.time())
    await refused(verifier, hs256(claims(iat=now - 7200, exp=now - 3600)), says="expired")


async def test_a_remembered_token_still_expires() -> None:
    # verified tokens are remembered, but a hit checks the expiry again
    verifier = SupabaseJwtVerifier(secret=SECRET, issuer=ISSUER, leeway=0)
    token = hs256(claims(exp=int(time.time()) + 2))
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert token in verifier._verified
    await asyncio.sleep(3.1)
    await refused(verifier, token, says="expired")


async def test_remembered_tokens_are_bounded_and_re_verified_after_a_while(
    verifier: SupabaseJwtVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    import genstudio.adapters.supabase.auth as auth

    monkeypatch.setattr(auth, "VERIFIED_CACHE_SIZE", 3)
    tokens = [hs256(claims()) for _ in range(5)]
    for token in tokens:
        await verifier.verify(token)
    assert list(verifier._verified) == tokens[-3:]
    # a remembered token is verified afresh after VERIFIED_CACHE_SECONDS: a signing
    # key withdrawn since (here: a new secret) stops being honoured
    verifier._secret = "another-secret-of-at-least-thirty-two-chars"
    assert (await verifier.verify(tokens[-1])).user_id  # still remembered
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + auth.VERIFIED_CACHE_SECONDS + 1)
    await refused(verifier, tokens[-1], says="signature")


async def test_clock_skew_within_the_leeway_is_tolerated(verifier: SupabaseJwtVerifier) -> None:
    now = int(time.time())
    await verifier.verify(hs256(claims(iat=now - 700, exp=now - 10)))


async def test_a_token_for_another_audience_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(aud="anon")), says="not meant for")


async def test_a_token_without_an_audience_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(aud=None)), says="aud")


async def test_a_token_from_another_issuer_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(iss="https://evil.example/auth/v1")), says="issued")


async def test_a_token_without_an_issuer_is_refused_when_one_is_configured(
    verifier: SupabaseJwtVerifier,
) -> None:
    await refused(verifier, hs256(claims(iss=None)), says="'iss'")


async def test_the_issuer_is_not_checked_unless_configured() -> None:
    principal = await SupabaseJwtVerifier(secret=SECRET).verify(hs256(claims(iss="anything")))
    assert principal.role == "authenticated"


async def test_a_forged_signature_is_refused(verifier: SupabaseJwtVerifier) -> None:
    forged = hs256(claims(), secret="not-the-project-secret-but-just-as-long")
    await refused(verifier, forged, says="signature")


async def test_a_tampered_payload_is_refused(verifier: SupabaseJwtVerifier) -> None:
    header, _, signature = hs256(claims()).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(claims(role="service_role")).encode())
    tampered = f"{header}.{payload.decode().rstrip('=')}.{signature}"
    await refused(verifier, tampered, says="signature")


async def test_an_unsigned_token_is_refused(verifier: SupabaseJwtVerifier) -> None:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."
    await refused(verifier, unsigned, says="'none' is not allowed")


async def test_an_algorithm_outside_the_allowed_set_is_refused(
    verifier: SupabaseJwtVerifier,
) -> None:
    await refused(
        verifier, jwt.encode(claims(), SECRET * 2, algorithm="HS512"), says="'HS512' is not allowed"
    )


async def test_a_token_without_a_subject_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(sub=None)), says="'sub'")


async def test_a_subject_that_is_not_a_user_id_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(sub="anon")), says="subject")


async def test_a_token_without_an_expiry_is_refused(verifier: SupabaseJwtVerifier) -> None:
    await refused(verifier, hs256(claims(exp=None)), says="'exp'")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer x.y.z"])
async def test_malformed_tokens_are_refused(verifier: SupabaseJwtVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


# --- JWKS: ES256 and RS256 -------------------------------------------------------------


class Jwks:
    """A JWKS endpoint on loopback, like Supabase's /auth/v1/.well-known/jwks.json."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.requests += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/auth/v1/.well-known/jwks.json"

    def publish(self, kid: str, jwk: dict[str, Any], alg: str) -> None:
        self.keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    thread = threading.Thread(
        target=served.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return json.loads(ECAlgorithm.to_jwk(key.public_key()))  # type: ignore[no-any-return]


def rsa_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return json.loads(RSAAlgorithm.to_jwk(key.public_key()))  # type: ignore[no-any-return]


def signed(key: Any, alg: str, kid: str, payload: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload or claims(), key, algorithm=alg, headers={"kid": kid})


async def test_an_es256_token_verifies_through_the_jwks(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url, issuer=ISSUER)
    payload = claims()
    principal = await verifier.verify(signed(ec_key, "ES256", "ec-1", payload))
    assert principal.user_id == uuid.UUID(payload["sub"])


async def test_an_rs256_token_verifies_through_the_jwks(
    jwks: Jwks, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.publish("rsa-1", rsa_jwk(rsa_key), "RS256")
    verifier = SupabaseJwtVerifier(secret=SECRET, jwks_url=jwks.url, issuer=ISSUER)
    payload = claims()
    principal = await verifier.verify(signed(rsa_key, "RS256", "rsa-1", payload))
    assert principal.user_id == uuid.UUID(payload["sub"])
    # the secret still verifies HS256 tokens alongside (a project mid-migration)
    await verifier.verify(hs256(claims()))


async def test_keys_are_fetched_once_and_cached(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    for _ in range(3):
        await verifier.verify(signed(ec_key, "ES256", "ec-1"))
    assert jwks.requests == 1


async def test_an_unknown_kid_is_refused_and_refetches_at_most_once_a_minute(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    await verifier.verify(signed(ec_key, "ES256", "ec-1"))
    for _ in range(5):
        await refused(verifier, signed(ec_key, "ES256", "made-up"), says="unknown signing key")
    assert jwks.requests == 1  # the first fetch was less than a minute ago


async def test_a_rotated_key_is_picked_up_by_a_refetch(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url, jwks_refresh_seconds=0)
    await verifier.verify(signed(ec_key, "ES256", "ec-1"))
    jwks.publish("rsa-2", rsa_jwk(rsa_key), "RS256")
    await verifier.verify(signed(rsa_key, "RS256", "rsa-2"))
    assert jwks.requests == 2


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    impostor = ec.generate_private_key(ec.SECP256R1())
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    await refused(verifier, signed(impostor, "ES256", "ec-1"), says="signature")


async def test_a_kid_of_another_key_type_is_refused(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    await refused(verifier, signed(rsa_key, "RS256", "ec-1"), says="not a RS256 key")


async def test_an_expired_es256_token_is_refused(
    jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks.publish("ec-1", ec_jwk(ec_key), "ES256")
    verifier = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    now = int(time.time())
    token = signed(ec_key, "ES256", "ec-1", claims(iat=now - 7200, exp=now - 3600))
    await refused(verifier, token, says="expired")


async def test_a_public_key_cannot_be_used_as_an_hmac_secret(
    jwks: Jwks, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks.publish("rsa-1", rsa_jwk(rsa_key), "RS256")
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the classic algorithm-confusion forgery: HS256 keyed with the published key
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    segments = [
        base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
        for obj in (header, claims())
    ]
    mac = hmac.new(pem, ".".join(segments).encode(), hashlib.sha256).digest()
    forged = ".".join([*segments, base64.urlsafe_b64encode(mac).decode().rstrip("=")])
    with_secret = SupabaseJwtVerifier(secret=SECRET, jwks_url=jwks.url)
    await refused(with_secret, forged, says="signature")
    jwks_only = SupabaseJwtVerifier(secret=None, jwks_url=jwks.url)
    await refused(jwks_only, forged, says="HS256 tokens are not accepted")


async def test_asymmetric_tokens_are_refused_without_a_jwks_url(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = SupabaseJwtVerifier(secret=SECRET)
    await refused(verifier, signed(rsa_key, "RS256", "rsa-1"), says="not accepted")


async def test_an_unreachable_jwks_refuses_the_token_quickly(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    verifier = SupabaseJwtVerifier(
        secret=None, jwks_url="http://127.0.0.1:9/jwks.json", http_timeout=2
    )
    await refused(verifier, signed(ec_key, "ES256", "ec-1"), says="could not be fetched")


def test_a_verifier_needs_a_secret_or_a_jwks_url() -> None:
    with pytest.raises(ValueError):
        SupabaseJwtVerifier(secret=None)
