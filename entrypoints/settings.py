"""Typed settings from the environment. Nothing else reads os.environ."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from adapters.gpu_runpod.provider import parse_endpoints
from core.model.pricing import ModelKind
from entrypoints.iap_settings import AppleSettings, GoogleSettings, apple_from_env, google_from_env
from entrypoints.limits_settings import RateSettings, rate_settings_from_env
from entrypoints.realtime_settings import RealtimeSettings, realtime_settings_from_env
from entrypoints.training_settings import PhotoSettings, photo_settings_from_env


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None  # else derived: see token_issuer
    jwt_max_lifetime: float = 7 * 24 * 3600.0  # seconds a token may live (exp - iat)
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".genstudio")
    public_url: str | None = None
    media_secret: str | None = None
    signed_url_ttl: int = 3600
    worker_concurrency: int = 4
    stop_grace: float = 30.0  # seconds a stopping worker lets its jobs run on
    poll_interval: float = 0.5
    job_timeout: float = 900.0  # seconds; the default of every job kind
    # per kind (GENSTUDIO_JOB_TIMEOUT_<KIND>); a kind not named keeps the core's default
    job_timeouts: dict[str, float] = msgspec.field(default_factory=dict)
    request_deadline: float = 20.0  # seconds a request may take to start its answer; then 503
    log_level: str = "INFO"
    log_format: str = "auto"  # json | text | auto: text on a terminal, JSON otherwise
    db_pool_size: int = 10
    db_prepared: bool = True
    local_gpu_seconds: float = 0.0  # the preview renderer's minimum time per job
    apple: AppleSettings = msgspec.field(default_factory=AppleSettings)  # APPLE_*
    google: GoogleSettings = msgspec.field(default_factory=GoogleSettings)  # GOOGLE_*
    photos: PhotoSettings = msgspec.field(default_factory=PhotoSettings)  # GENSTUDIO_PHOTO_*
    rate: RateSettings = msgspec.field(default_factory=RateSettings)  # GENSTUDIO_RATE_*
    # GENSTUDIO_REALTIME_*
    realtime: RealtimeSettings = msgspec.field(default_factory=RealtimeSettings)
    supabase_url: str | None = None  # with the service key: media in Supabase Storage
    supabase_service_key: str | None = None
    supabase_storage_bucket: str = "media"
    openrouter_api_key: str | None = None  # captions and prompt enhancement via OpenRouter
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    # push (issue #18): Expo only when EXPO_PUSH_ENABLED=1 or EXPO_ACCESS_TOKEN is set;
    # otherwise the in-app inbox is the only channel (push deliveries are skipped)
    expo_enabled: bool = False
    expo_access_token: str | None = None
    expo_base_url: str = "https://exp.host"
    openrouter_caption_model: str = "openai/gpt-4o-mini"
    openrouter_enhance_model: str = "openai/gpt-4o-mini"
    openrouter_timeout: float = 10.0
    runpod_base_url: str = "https://api.runpod.ai/v2"
    runpod_api_key: str | None = None  # with RUNPOD_ENDPOINTS: Runpod serverless serves jobs
    runpod_endpoints: dict[str, str] = msgspec.field(default_factory=dict)  # model -> endpoint id
    runpod_webhook_secret: str | None = None  # accepts POST /v1/webhooks/runpod?token=...
    runpod_rate_limit: float = 10.0  # requests a second per Runpod endpoint, client side
    modal_base_url: str | None = None  # our Modal app's web endpoints (docs/providers.md)
    modal_token_id: str | None = None  # a Modal proxy auth token: Modal-Key / Modal-Secret
    modal_token_secret: str | None = None
    gpu_timeout: float = 30.0  # seconds for each HTTP call to a GPU provider
    per_user_in_flight: int = 2
    lease_seconds: float = 30.0
    retry_base_delay: float = 2.0
    retry_max_delay: float = 300.0
    reconcile_interval: float = 5.0
    redeliver_after: float = 15.0  # a due job not picked up this long gets another wake-up
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0

    @property
    def embedded(self) -> bool:
        """No DATABASE_URL: run on an embedded PostgreSQL under the data directory."""
        return self.database_url is None

    @property
    def supabase_storage(self) -> bool:
        """Media go to Supabase Storage (else to local files under the data directory)."""
        return bool(self.supabase_url and self.supabase_service_key)

    @property
    def token_issuer(self) -> str | None:
        """The ``iss`` every access token must carry: SUPABASE_JWT_ISSUER, else what
        Supabase Auth signs as (``<SUPABASE_URL>/auth/v1``), else the JWKS URL's
        (``…/auth/v1/.well-known/jwks.json``). None (not checked) only where none of
        them is set: the embedded default, whose secret never leaves its data dir."""
        if self.jwt_issuer:
            return self.jwt_issuer
        if self.supabase_url:
            return f"{self.supabase_url.rstrip('/')}/auth/v1"
        suffix = "/.well-known/jwks.json"
        if self.jwks_url and self.jwks_url.rstrip("/").endswith(suffix):
            return self.jwks_url.rstrip("/").removesuffix(suffix)
        return None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)

        def opt(name: str) -> str | None:
            value = e.get(name, "").strip()
            return value or None

        def number(name: str, default: float) -> float:
            raw = opt(name)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError:
                raise SystemExit(f"{name} must be a number, not {raw!r}") from None

        def switch(name: str, default: bool) -> bool:
            raw = opt(name)
            if raw is None:
                return default
            if raw.lower() in ("1", "on", "true", "yes"):
                return True
            if raw.lower() in ("0", "off", "false", "no"):
                return False
            raise SystemExit(f"{name} must be on or off, not {raw!r}")

        return cls(
            database_url=opt("DATABASE_URL"),
            redis_url=opt("REDIS_URL"),
            jwt_secret=opt("SUPABASE_JWT_SECRET"),
            jwks_url=opt("SUPABASE_JWKS_URL"),
            jwt_issuer=opt("SUPABASE_JWT_ISSUER"),
            host=opt("HOST") or "127.0.0.1",
            port=int(number("PORT", 8000)),
            data_dir=Path(opt("GENSTUDIO_DATA_DIR") or ".genstudio"),
            public_url=opt("GENSTUDIO_PUBLIC_URL"),
            media_secret=opt("GENSTUDIO_MEDIA_SECRET"),
            jwt_max_lifetime=number("SUPABASE_JWT_MAX_LIFETIME", 7 * 24 * 3600.0),
            signed_url_ttl=int(number("GENSTUDIO_SIGNED_URL_TTL", 3600)),
            worker_concurrency=int(number("GENSTUDIO_WORKER_CONCURRENCY", 4)),
            stop_grace=number("GENSTUDIO_STOP_GRACE", 30.0),
            poll_interval=number("GENSTUDIO_POLL_INTERVAL", 0.5),
            job_timeout=number("GENSTUDIO_JOB_TIMEOUT", 900.0),
            job_timeouts={
                kind.value: number(f"GENSTUDIO_JOB_TIMEOUT_{kind.name}", 0.0)
                for kind in ModelKind
                if opt(f"GENSTUDIO_JOB_TIMEOUT_{kind.name}") is not None
            },
            request_deadline=number("GENSTUDIO_REQUEST_DEADLINE", 20.0),
            log_level=(opt("GENSTUDIO_LOG_LEVEL") or "INFO").upper(),
            log_format=log_format(opt("GENSTUDIO_LOG_FORMAT")),
            db_pool_size=int(number("GENSTUDIO_DB_POOL_SIZE", 10)),
            db_prepared=switch("GENSTUDIO_DB_PREPARED", True),
            local_gpu_seconds=number("GENSTUDIO_LOCAL_GPU_SECONDS", 0.0),
            apple=apple_from_env(e),
            google=google_from_env(e),
            photos=photo_settings_from_env(e),
            rate=rate_settings_from_env(e),
            realtime=realtime_settings_from_env(e),
            supabase_url=opt("SUPABASE_URL"),
            supabase_service_key=opt("SUPABASE_SERVICE_KEY") or opt("SUPABASE_SERVICE_ROLE_KEY"),
            supabase_storage_bucket=opt("SUPABASE_STORAGE_BUCKET") or "media",
            openrouter_api_key=opt("OPENROUTER_API_KEY"),
            openrouter_base_url=opt("OPENROUTER_BASE_URL") or "https://openrouter.ai/api/v1",
            expo_enabled=bool(opt("EXPO_ACCESS_TOKEN"))
            or (opt("EXPO_PUSH_ENABLED") or "").lower() in ("1", "true", "yes"),
            expo_access_token=opt("EXPO_ACCESS_TOKEN"),
            expo_base_url=opt("EXPO_BASE_URL") or "https://exp.host",
            openrouter_caption_model=opt("OPENROUTER_CAPTION_MODEL") or "openai/gpt-4o-mini",
            openrouter_enhance_model=opt("OPENROUTER_ENHANCE_MODEL") or "openai/gpt-4o-mini",
            openrouter_timeout=number("OPENROUTER_TIMEOUT", 10.0),
            runpod_base_url=opt("RUNPOD_BASE_URL") or "https://api.runpod.ai/v2",
            runpod_api_key=opt("RUNPOD_API_KEY"),
            runpod_endpoints=runpod_endpoints(opt("RUNPOD_ENDPOINTS")),
            runpod_webhook_secret=opt("RUNPOD_WEBHOOK_SECRET"),
            runpod_rate_limit=number("RUNPOD_RATE_LIMIT", 10.0),
            modal_base_url=opt("MODAL_BASE_URL"),
            modal_token_id=opt("MODAL_TOKEN_ID"),
            modal_token_secret=opt("MODAL_TOKEN_SECRET"),
            gpu_timeout=number("GENSTUDIO_GPU_TIMEOUT", 30.0),
            per_user_in_flight=int(number("GENSTUDIO_PER_USER_IN_FLIGHT", 2)),
            lease_seconds=number("GENSTUDIO_LEASE_SECONDS", 30.0),
            retry_base_delay=number("GENSTUDIO_RETRY_BASE_DELAY", 2.0),
            retry_max_delay=number("GENSTUDIO_RETRY_MAX_DELAY", 300.0),
            reconcile_interval=number("GENSTUDIO_RECONCILE_INTERVAL", 5.0),
            redeliver_after=number("GENSTUDIO_REDELIVER_AFTER", 15.0),
            breaker_failures=int(number("GENSTUDIO_BREAKER_FAILURES", 5)),
            breaker_cooldown=number("GENSTUDIO_BREAKER_COOLDOWN", 30.0),
        )


def log_format(raw: str | None) -> str:
    """GENSTUDIO_LOG_FORMAT: ``json``, ``text`` or ``auto`` (text on a terminal, else JSON)."""
    value = (raw or "auto").lower()
    if value not in ("json", "text", "auto"):
        raise SystemExit(f"GENSTUDIO_LOG_FORMAT must be json, text or auto, not {raw!r}")
    return value


def runpod_endpoints(spec: str | None) -> dict[str, str]:
    """RUNPOD_ENDPOINTS: ``model=endpoint_id,...``; a model is a catalog id, a provider
    model name, or ``*`` for every other model."""
    if spec is None:
        return {}
    try:
        return parse_endpoints(spec)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def kept_secret(data_dir: Path, name: str) -> str:
    """A random secret generated once and kept in the data directory (mode 0600).

    Processes starting together (``serve`` and a ``worker`` on one data dir) agree on
    one secret: each writes its candidate to a file of its own and links it into
    place, which only the first can do; the others read the winner's, never a
    half-written file.
    """
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    candidate = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        os.link(candidate, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        candidate.unlink(missing_ok=True)
    return value


def resolve_secrets(settings: Settings) -> Settings:
    """Fill in the JWT and media secrets: from the environment, else kept in the data dir.

    With a DATABASE_URL (production) the JWT secret or a JWKS URL must be given:
    a generated secret would make every real user's token invalid.
    """
    jwt_secret = settings.jwt_secret
    if jwt_secret is None and settings.jwks_url is None:
        if not settings.embedded:
            raise SystemExit(
                "SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL is required when DATABASE_URL is set"
            )
        jwt_secret = kept_secret(settings.data_dir, "jwt_secret")
    media_secret = settings.media_secret or kept_secret(settings.data_dir, "media_secret")
    return msgspec.structs.replace(settings, jwt_secret=jwt_secret, media_secret=media_secret)
