"""Supabase settings: ``SUPABASE_*`` (Auth's JWTs and Storage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.entrypoints.settings.env import Env


class SupabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = ("SUPABASE_",)

    url: str | None = None  # with the service key: media in Supabase Storage
    service_key: str | None = None
    storage_bucket: str = "media"
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None  # else derived: see token_issuer
    jwt_max_lifetime: float = 7 * 24 * 3600.0  # seconds a token may live (exp - iat)

    @property
    def token_issuer(self) -> str | None:
        """The ``iss`` every access token must carry: SUPABASE_JWT_ISSUER, else what
        Supabase Auth signs as (``<SUPABASE_URL>/auth/v1``), else the JWKS URL's
        (``…/auth/v1/.well-known/jwks.json``). None (not checked) only where none of
        them is set: the embedded default, whose secret never leaves its data dir."""
        if self.jwt_issuer:
            return self.jwt_issuer
        if self.url:
            return f"{self.url.rstrip('/')}/auth/v1"
        suffix = "/.well-known/jwks.json"
        if self.jwks_url and self.jwks_url.rstrip("/").endswith(suffix):
            return self.jwks_url.rstrip("/").removesuffix(suffix)
        return None

    @property
    def storage(self) -> bool:
        """Media go to Supabase Storage (else to local files under the data directory)."""
        return bool(self.url and self.service_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SupabaseSettings:
        e = Env(env)
        return cls(
            url=e.opt("SUPABASE_URL"),
            service_key=e.opt("SUPABASE_SERVICE_KEY") or e.opt("SUPABASE_SERVICE_ROLE_KEY"),
            storage_bucket=e.text("SUPABASE_STORAGE_BUCKET", "media"),
            jwt_secret=e.opt("SUPABASE_JWT_SECRET"),
            jwks_url=e.opt("SUPABASE_JWKS_URL"),
            jwt_issuer=e.opt("SUPABASE_JWT_ISSUER"),
            jwt_max_lifetime=e.number("SUPABASE_JWT_MAX_LIFETIME", 7 * 24 * 3600.0),
        )
