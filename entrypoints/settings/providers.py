"""Paid providers' settings: ``OPENROUTER_*``, ``RUNPOD_*`` and ``MODAL_*``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.adapters.gpu_runpod.provider import parse_endpoints
from genstudio.entrypoints.settings.env import Env


class OpenRouterSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Captions and prompt enhancement via OpenRouter (with an API key)."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("OPENROUTER_",)

    api_key: str | None = None
    base_url: str = "https://openrouter.ai/api/v1"
    caption_model: str = "openai/gpt-4o-mini"
    enhance_model: str = "openai/gpt-4o-mini"
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpenRouterSettings:
        e = Env(env)
        return cls(
            api_key=e.opt("OPENROUTER_API_KEY"),
            base_url=e.text("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1"),
            caption_model=e.text("OPENROUTER_CAPTION_MODEL", "openai/gpt-4o-mini"),
            enhance_model=e.text("OPENROUTER_ENHANCE_MODEL", "openai/gpt-4o-mini"),
            timeout=e.number("OPENROUTER_TIMEOUT", 10.0),
        )


class RunpodSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = ("RUNPOD_",)

    base_url: str = "https://api.runpod.ai/v2"
    api_key: str | None = None  # with RUNPOD_ENDPOINTS: Runpod serverless serves jobs
    endpoints: dict[str, str] = msgspec.field(default_factory=dict)  # model -> endpoint id
    webhook_secret: str | None = None  # accepts POST /v1/webhooks/runpod?token=...
    rate_limit: float = 10.0  # requests a second per Runpod endpoint, client side

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunpodSettings:
        e = Env(env)
        return cls(
            base_url=e.text("RUNPOD_BASE_URL", "https://api.runpod.ai/v2"),
            api_key=e.opt("RUNPOD_API_KEY"),
            endpoints=runpod_endpoints(e.opt("RUNPOD_ENDPOINTS")),
            webhook_secret=e.opt("RUNPOD_WEBHOOK_SECRET"),
            rate_limit=e.number("RUNPOD_RATE_LIMIT", 10.0),
        )


class ModalSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = ("MODAL_",)

    base_url: str | None = None  # our Modal app's web endpoints (docs/providers.md)
    token_id: str | None = None  # a Modal proxy auth token: Modal-Key / Modal-Secret
    token_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModalSettings:
        e = Env(env)
        return cls(
            base_url=e.opt("MODAL_BASE_URL"),
            token_id=e.opt("MODAL_TOKEN_ID"),
            token_secret=e.opt("MODAL_TOKEN_SECRET"),
        )


def runpod_endpoints(spec: str | None) -> dict[str, str]:
    """RUNPOD_ENDPOINTS: ``model=endpoint_id,...``; a model is a catalog id, a provider
    model name, or ``*`` for every other model."""
    if spec is None:
        return {}
    try:
        return parse_endpoints(spec)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
