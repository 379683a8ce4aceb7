"""``GPU_PROVIDERS=...,fal``: the factory genstudio calls, reading the ``FAL_*`` variables.

    FAL_KEY          the API key (required): sent as ``Authorization: Key <FAL_KEY>``
    FAL_MODELS       model=fal_model_id pairs, comma separated; ``model`` a catalog id
                     (flux-schnell), a provider model name, or ``*`` for the rest;
                     default ``*=fal-ai/flux/schnell``
    FAL_QUEUE_URL    default https://queue.fal.run
    FAL_RATE_LIMIT   calls a second, client side (default: none)

Each call's time limit is genstudio's GENSTUDIO_GPU_TIMEOUT, as for its own providers.
"""

from __future__ import annotations

from collections.abc import Mapping

from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.entrypoints.settings import Settings

from genstudio_fal.provider import DEFAULT_MODEL, DEFAULT_QUEUE_URL, FalProvider


def parse_models(spec: str) -> dict[str, str]:
    """FAL_MODELS as {provider model name or ``*``: fal model id}; catalog ids become
    the provider model names a job carries. SystemExit naming the variable."""
    known = {m.id: m.provider_model for m in DEFAULT_CATALOG.all()}
    models: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        model, sep, fal_model = (s.strip() for s in part.partition("="))
        if not sep or not model or fal_model.count("/") < 1 or not all(fal_model.split("/")[:2]):
            raise SystemExit(f"FAL_MODELS: expected model=owner/app[/path], not {part.strip()!r}")
        name = known.get(model, model)
        if name in models:
            raise SystemExit(f"FAL_MODELS: {model!r} is listed twice")
        models[name] = fal_model
    if not models:
        raise SystemExit("FAL_MODELS names no model")
    return models


def from_settings(settings: Settings, env: Mapping[str, str]) -> FalProvider:
    """The provider for genstudio (entry point ``genstudio.gpu_providers: fal``)."""

    def opt(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    key = opt("FAL_KEY")
    if key is None:
        raise SystemExit("GPU_PROVIDERS names fal, which needs FAL_KEY (a fal API key)")
    rate: float | None = None
    raw_rate = opt("FAL_RATE_LIMIT")
    if raw_rate is not None:
        try:
            rate = float(raw_rate)
        except ValueError:
            raise SystemExit(f"FAL_RATE_LIMIT must be a number, not {raw_rate!r}") from None
        if rate <= 0:
            raise SystemExit(f"FAL_RATE_LIMIT must be positive, not {raw_rate!r}")
    return FalProvider(
        key=key,
        models=parse_models(opt("FAL_MODELS") or f"*={DEFAULT_MODEL}"),
        queue_url=opt("FAL_QUEUE_URL") or DEFAULT_QUEUE_URL,
        timeout=settings.jobs.gpu_timeout,
        rate_limit=rate,
    )
