"""In-app purchase settings: ``APPLE_*`` and ``GOOGLE_*`` environment variables."""

from __future__ import annotations

from typing import Any

import msgspec


class AppleSettings(msgspec.Struct, frozen=True, kw_only=True):
    root_certificates: str | None = None  # paths or base64 DER, comma-separated
    bundle_id: str | None = None
    environment: str = "Production"  # or Sandbox
    app_apple_id: int | None = None
    online_checks: bool = True  # OCSP on the chain; off only for tests
    api_base_url: str | None = None  # default: Apple's, by environment
    private_key: str | None = None  # App Store Connect API key: a .p8 path or the PEM
    key_id: str | None = None
    issuer_id: str | None = None
    api_timeout: float = 10.0
    product_ids: str | None = None  # "credits_100=com.x.c100,pro_monthly=com.x.pro.m"
    # with environment Production: whether Sandbox purchases (App Review's) grant
    # credits (grant) or are refused (refuse); README says why grant is the default
    sandbox_in_production: str = "grant"


class GoogleSettings(msgspec.Struct, frozen=True, kw_only=True):
    package_name: str | None = None
    service_account: str | None = None  # a JSON key file path, or the JSON itself
    play_base_url: str = "https://androidpublisher.googleapis.com"
    oauth_token_url: str = "https://oauth2.googleapis.com/token"
    oidc_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    pubsub_audience: str | None = None
    pubsub_service_account: str | None = None
    api_timeout: float = 10.0
    product_ids: str | None = None


def _env(env: dict[str, str], prefix: str, cls: type[Any]) -> Any:
    """Fields from ``PREFIX_FIELD`` variables, converted to the field's type."""
    values = {}
    for field in msgspec.structs.fields(cls):
        raw = env.get(f"{prefix}{field.name.upper()}", "").strip()
        if raw:
            values[field.name] = raw
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"{prefix}*: {exc}") from None


def apple_from_env(env: dict[str, str]) -> AppleSettings:
    settings: AppleSettings = _env(env, "APPLE_", AppleSettings)
    return settings


def google_from_env(env: dict[str, str]) -> GoogleSettings:
    settings: GoogleSettings = _env(env, "GOOGLE_", GoogleSettings)
    return settings
