"""Supabase Auth access tokens (JWTs) to principals.

Supabase signs with the project's shared secret (HS256, the legacy default) or with
an asymmetric signing key (ES256 or RS256) whose public half is published as a JWKS
at ``https://<project>.supabase.co/auth/v1/.well-known/jwks.json``. Each algorithm
is checked only against its own kind of key, so a token cannot pass off a public
key as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

import httpx
import jwt

from genstudio.core.model.errors import Unauthorized
from genstudio.ports.auth import Principal

HMAC_ALGORITHMS = frozenset({"HS256"})
JWKS_ALGORITHMS = frozenset({"ES256", "RS256"})

#: an unknown ``kid`` refetches the JWKS (keys rotate) at most this often, so a
#: flood of tokens with made-up kids cannot turn into a flood of requests to Supabase
JWKS_REFRESH_SECONDS = 60.0

#: verified tokens remembered (an app sends the same token with every request until
#: it refreshes it): a hit skips parsing and the signature check, never the expiry
VERIFIED_CACHE_SIZE = 4096
#: ...and for at most this long, so that a signing key withdrawn from the JWKS stops
#: being honoured within it
VERIFIED_CACHE_SECONDS = 300.0

#: the longest a token may live (``exp - iat``): Supabase Auth's own upper bound on
#: its JWT expiry setting is a week; a token minted for years is a leaked key's reach
MAX_LIFETIME_SECONDS = 7 * 24 * 3600

#: the roles of a token that may call the API: a signed-in user, or operations. The
#: project's ``anon`` key (and any other role) names no user (issue #19)
ACCEPTED_ROLES = frozenset({"authenticated", "service_role"})

log = logging.getLogger("genstudio.auth")


class SupabaseJwtVerifier:
    def __init__(
        self,
        *,
        secret: str | None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str = "authenticated",
        leeway: int = 30,
        http_timeout: float = 5.0,
        jwks_refresh_seconds: float = JWKS_REFRESH_SECONDS,
        max_lifetime: float = MAX_LIFETIME_SECONDS,
    ) -> None:
        if not secret and not jwks_url:
            raise ValueError("configure a JWT secret, a JWKS URL, or both")
        self._secret = secret or None
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._http_timeout = http_timeout
        self._refresh_seconds = jwks_refresh_seconds
        self._max_lifetime = max_lifetime
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._fetch_lock = asyncio.Lock()
        # token -> (principal, its exp, when it was verified)
        self._verified: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token")
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires, verified_at = remembered
            now = time.time()
            if now <= expires + self._leeway and now - verified_at < VERIFIED_CACHE_SECONDS:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]  # expired: the full check below says so
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, expires, time.time())
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            # the library's words stay in our log: they describe its parser to a prober
            log.info("malformed token", extra={"error": str(exc)[:200]})
            raise Unauthorized("malformed token") from exc
        algorithm = header.get("alg")
        key: str | jwt.PyJWK
        if algorithm in HMAC_ALGORITHMS:
            if self._secret is None:
                raise Unauthorized(f"{algorithm} tokens are not accepted here")
            key = self._secret
        elif algorithm in JWKS_ALGORITHMS:
            if self._jwks_url is None:
                raise Unauthorized(f"{algorithm} tokens are not accepted here")
            key = await self._key(header.get("kid"), algorithm)
        else:
            raise Unauthorized(f"signing algorithm {algorithm!r} is not allowed")
        claims = self._decode(token, key, algorithm)
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except (KeyError, ValueError) as exc:
            raise Unauthorized("the token's subject is not a user id") from exc
        role = str(claims.get("role", "authenticated"))
        if role not in ACCEPTED_ROLES:
            raise Unauthorized("the token does not name a signed-in user")
        self._check_lifetime(claims)
        email = claims.get("email")
        principal = Principal(
            user_id=user_id,
            email=email if isinstance(email, str) and email else None,
            role=role,
            expires_at=float(claims["exp"]),
        )
        return principal, float(claims["exp"])

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """``exp - iat`` within the bound; a token that does not say when it was issued
        has no lifetime to check, and is refused as unbounded."""
        issued, expires = claims.get("iat"), claims["exp"]
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            raise Unauthorized("the token has no 'iat' claim")
        if float(expires) - float(issued) > self._max_lifetime:
            raise Unauthorized(f"the token lives longer than {int(self._max_lifetime)} seconds")

    def _decode(self, token: str, key: str | jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        required = ["exp", "sub"] if self._issuer is None else ["exp", "sub", "iss"]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(f"the token is not meant for {self._audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the token was issued by someone else") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("the token's signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim!r} claim") from exc
        except jwt.InvalidTokenError as exc:
            log.info("invalid token", extra={"error": str(exc)[:200]})
            raise Unauthorized("invalid token") from exc
        return claims

    async def _key(self, kid: object, algorithm: str) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token names no signing key (kid)")
        key = self._keys.get(kid)
        if key is None:
            async with self._fetch_lock:
                key = self._keys.get(kid)  # another request may have just fetched it
                if key is None and self._may_refetch():
                    await self._fetch()
                    key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(f"unknown signing key {kid!r}")
        if key.algorithm_name != algorithm:
            raise Unauthorized(f"signing key {kid!r} is not a {algorithm} key")
        return key

    def _may_refetch(self) -> bool:
        return (
            self._fetched_at is None or time.monotonic() - self._fetched_at >= self._refresh_seconds
        )

    async def _fetch(self) -> None:
        assert self._jwks_url is not None
        # counted as a fetch even when it fails: a JWKS endpoint that is down is
        # not asked again by every request
        self._fetched_at = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=self._http_timeout) as client:
                response = await client.get(self._jwks_url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the JWKS could not be fetched", extra={"error": repr(exc)[:300]})
            raise Unauthorized("the signing keys could not be fetched") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type or curve we do not use; the others still count
            if isinstance(kid, str) and key.algorithm_name in JWKS_ALGORITHMS:
                keys[kid] = key
        self._keys = keys


def mint_token(
    secret: str,
    *,
    user_id: uuid.UUID | str,
    email: str | None = None,
    role: str = "authenticated",
    ttl_seconds: int = 3600,
    issuer: str | None = None,
) -> str:
    """An HS256 access token shaped like Supabase Auth's (for the CLI and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.UUID(str(user_id))),
        "aud": "authenticated",
        "role": role,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if email is not None:
        claims["email"] = email
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
