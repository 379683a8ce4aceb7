"""Settings come in one group per environment prefix: each group's ``from_env`` reads
only its own variables, keeps the defaults its fields declare, and ``Settings`` is
the groups composed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import pytest

from genstudio.entrypoints.iap_settings import apple_from_env, google_from_env
from genstudio.entrypoints.limits_settings import rate_settings_from_env
from genstudio.entrypoints.realtime_settings import realtime_settings_from_env
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ExpoSettings,
    JobSettings,
    ModalSettings,
    NotifySettings,
    ObservabilitySettings,
    OpenRouterSettings,
    RedisSettings,
    RunpodSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from genstudio.entrypoints.training_settings import photo_settings_from_env

GROUPS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "supabase": SupabaseSettings,
    "server": ServerSettings,
    "jobs": JobSettings,
    "openrouter": OpenRouterSettings,
    "runpod": RunpodSettings,
    "modal": ModalSettings,
    "expo": ExpoSettings,
    "notify": NotifySettings,
    "observability": ObservabilitySettings,
}

#: the groups that predate this layout: (Settings field, reader, its prefixes)
OLDER: list[tuple[str, Callable[[dict[str, str]], Any], tuple[str, ...]]] = [
    ("apple", apple_from_env, ("APPLE_",)),
    ("google", google_from_env, ("GOOGLE_",)),
    ("photos", photo_settings_from_env, ("GENSTUDIO_PHOTO_",)),
    ("rate", rate_settings_from_env, ("GENSTUDIO_RATE_", "GENSTUDIO_UPLOADS_IN_FLIGHT")),
    ("realtime", realtime_settings_from_env, ("GENSTUDIO_REALTIME_",)),
]

#: every variable of the groups above, each set to something other than its default
FULL = {
    "DATABASE_URL": "postgresql://db/app",
    "GENSTUDIO_DB_POOL_SIZE": "3",
    "GENSTUDIO_DB_PREPARED": "off",
    "REDIS_URL": "redis://cache/0",
    "SUPABASE_URL": "https://p.supabase.co",
    "SUPABASE_SERVICE_KEY": "service",
    "SUPABASE_STORAGE_BUCKET": "bucket",
    "SUPABASE_JWT_SECRET": "jwt",
    "SUPABASE_JWKS_URL": "https://p.supabase.co/auth/v1/.well-known/jwks.json",
    "SUPABASE_JWT_ISSUER": "issuer",
    "SUPABASE_JWT_MAX_LIFETIME": "60",
    "HOST": "0.0.0.0",
    "PORT": "9000",
    "GENSTUDIO_DATA_DIR": "/data",
    "GENSTUDIO_PUBLIC_URL": "https://api.example.com",
    "GENSTUDIO_MEDIA_SECRET": "media",
    "GENSTUDIO_SIGNED_URL_TTL": "60",
    "GENSTUDIO_REQUEST_DEADLINE": "5",
    "GENSTUDIO_LOG_LEVEL": "debug",
    "GENSTUDIO_LOG_FORMAT": "json",
    "GENSTUDIO_WORKER_CONCURRENCY": "8",
    "GENSTUDIO_STOP_GRACE": "1",
    "GENSTUDIO_POLL_INTERVAL": "0.1",
    "GENSTUDIO_JOB_TIMEOUT": "60",
    "GENSTUDIO_JOB_TIMEOUT_VIDEO": "1800",
    "GENSTUDIO_PER_USER_IN_FLIGHT": "5",
    "GENSTUDIO_LEASE_SECONDS": "11",
    "GENSTUDIO_RETRY_BASE_DELAY": "0.5",
    "GENSTUDIO_RETRY_MAX_DELAY": "6",
    "GENSTUDIO_RECONCILE_INTERVAL": "7",
    "GENSTUDIO_REDELIVER_AFTER": "12",
    "GENSTUDIO_BREAKER_FAILURES": "13",
    "GENSTUDIO_BREAKER_COOLDOWN": "14",
    "GENSTUDIO_LOCAL_GPU_SECONDS": "2",
    "GENSTUDIO_GPU_TIMEOUT": "8",
    "GENSTUDIO_WORKER_METRICS_PORT": "9100",
    "GENSTUDIO_WORKER_METRICS_HOST": "127.0.0.1",
    "OPENROUTER_API_KEY": "or-key",
    "OPENROUTER_BASE_URL": "http://openrouter.test",
    "OPENROUTER_CAPTION_MODEL": "caption/model",
    "OPENROUTER_ENHANCE_MODEL": "enhance/model",
    "OPENROUTER_TIMEOUT": "4",
    "RUNPOD_BASE_URL": "http://runpod.test",
    "RUNPOD_API_KEY": "rp-key",
    "RUNPOD_ENDPOINTS": "*=ep",
    "RUNPOD_WEBHOOK_SECRET": "hook",
    "RUNPOD_RATE_LIMIT": "3",
    "MODAL_BASE_URL": "http://modal.test",
    "MODAL_TOKEN_ID": "id",
    "MODAL_TOKEN_SECRET": "secret",
    "EXPO_ACCESS_TOKEN": "expo",
    "EXPO_PUSH_ENABLED": "1",
    "EXPO_BASE_URL": "http://expo.test",
    "EXPO_MAX_MESSAGES_PER_SECOND": "10",
    "GENSTUDIO_NOTIFY_AGGREGATION_WINDOW": "30",
    "GENSTUDIO_NOTIFY_PUSH_LEASE": "5",
    "GENSTUDIO_NOTIFY_LOW_BALANCE_BELOW": "2",
    "APPLE_BUNDLE_ID": "com.example",
    "GOOGLE_PACKAGE_NAME": "com.example",
    "GENSTUDIO_PHOTO_MIN_SIDE": "600",
    "GENSTUDIO_RATE_LIMITS": "off",
    "GENSTUDIO_UPLOADS_IN_FLIGHT": "2",
    "GENSTUDIO_REALTIME_QUEUE": "10",
    "SENTRY_DSN": "http://key@127.0.0.1:9/1",
    "SENTRY_ENVIRONMENT": "staging",
    "SENTRY_RELEASE": "1.2.3",
    "SENTRY_TRACES_SAMPLE_RATE": "0.1",
    "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
    "UNRELATED": "x",
}


class Recording(dict[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def _readers() -> list[tuple[str, Callable[[dict[str, str]], Any], tuple[str, ...]]]:
    ours = [(name, cls.from_env, cls.PREFIXES) for name, cls in GROUPS.items()]
    return ours + OLDER


@pytest.mark.parametrize(("name", "read", "prefixes"), _readers(), ids=lambda v: str(v)[:20])
def test_each_group_reads_only_variables_of_its_prefix(
    name: str, read: Callable[[dict[str, str]], Any], prefixes: tuple[str, ...]
) -> None:
    env = Recording(FULL)
    read(env)
    assert env.asked, f"{name} read nothing"
    strays = sorted(v for v in env.asked if not v.startswith(prefixes))
    assert strays == [], f"{name} read variables outside {prefixes}"


def test_no_two_groups_claim_the_same_variable() -> None:
    claims = [(name, p) for name, _, prefixes in _readers() for p in prefixes]
    for name, prefix in claims:
        for other, other_prefix in claims:
            if other != name:
                assert not other_prefix.startswith(prefix), (name, prefix, other, other_prefix)
    owned = {v for v in FULL if any(v.startswith(p) for _, p in claims)}
    assert owned == set(FULL) - {"UNRELATED"}


@pytest.mark.parametrize("name", list(GROUPS))
def test_a_group_sees_the_same_with_or_without_the_other_groups_variables(name: str) -> None:
    cls = GROUPS[name]
    own = {k: v for k, v in FULL.items() if k.startswith(cls.PREFIXES)}
    assert cls.from_env(FULL) == cls.from_env(own)


@pytest.mark.parametrize("name", list(GROUPS))
def test_unset_variables_keep_the_defaults_the_fields_declare(name: str) -> None:
    cls = GROUPS[name]
    assert cls.from_env({}) == cls()


@pytest.mark.parametrize("name", list(GROUPS))
def test_every_field_of_a_group_is_read_from_some_variable(name: str) -> None:
    cls = GROUPS[name]
    read, default = cls.from_env(FULL), cls()
    unchanged = [
        f.name
        for f in msgspec.structs.fields(cls)
        if getattr(read, f.name) == getattr(default, f.name)
    ]
    assert unchanged == []


def test_settings_from_env_is_the_groups_composed() -> None:
    settings = Settings.from_env(FULL)
    for name, cls in GROUPS.items():
        assert getattr(settings, name) == cls.from_env(FULL)
    for name, read, _ in OLDER:
        assert getattr(settings, name) == read(FULL)
    assert settings.runpod.endpoints == {"*": "ep"}
    assert settings.jobs.job_timeouts == {"video": 1800.0}
    assert settings.server.base_url == "https://api.example.com"
    assert settings.supabase.token_issuer == "issuer" and not settings.embedded


def test_the_service_key_also_reads_supabases_service_role_name() -> None:
    env = {"SUPABASE_URL": "https://p.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "role"}
    supabase = SupabaseSettings.from_env(env)
    assert supabase.service_key == "role" and supabase.storage
    assert supabase.token_issuer == "https://p.supabase.co/auth/v1"
