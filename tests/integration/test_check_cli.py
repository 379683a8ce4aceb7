"""``genstudio check`` (issue #20): every setting with its source, secrets masked, and
contradictions refused with a non-zero exit naming the variables. Run as the command
an operator (or the container's entrypoint) runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from genstudio.entrypoints.check import run
from tests.unit.test_settings_groups import FULL

SECRETS = {
    "DATABASE_URL": "postgresql://app:pg-pass-1234@db.example.com:5432/app",
    "REDIS_URL": "rediss://default:redis-pass-5678@cache.example.com:6379",
    "SUPABASE_URL": "https://ref.supabase.co",
    "SUPABASE_SERVICE_KEY": "service-key-abcdef",
    "SUPABASE_JWT_SECRET": "jwt-secret-ghijkl",
    "GENSTUDIO_MEDIA_SECRET": "media-secret-mnopqr",
    "RUNPOD_API_KEY": "runpod-key-stuvwx",
    "RUNPOD_ENDPOINTS": "*=abc123",
    "MODAL_BASE_URL": "https://acme--genstudio.modal.run",
    "MODAL_TOKEN_ID": "modal-id-yz0123",
    "MODAL_TOKEN_SECRET": "modal-secret-456789",
    "OPENAI_API_KEY": "openai-key-zyxwvu",
    "EXPO_ACCESS_TOKEN": "expo-token-tsrqpo",
    "GENSTUDIO_PUBLIC_URL": "https://api.example.com",
}
SECRET_VALUES = ["pg-pass-1234", "redis-pass-5678"] + [
    v for k, v in SECRETS.items() if any(w in k for w in ("KEY", "SECRET", "TOKEN"))
]


def genstudio_check(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "genstudio.entrypoints.cli", "check", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def in_process(env: dict[str, str]) -> tuple[int, str]:
    """The problems only (``--quiet``): the listing is the subprocess tests' subject."""
    out = io.StringIO()
    return run(env, out, quiet=True), out.getvalue()


def setting_lines(output: str) -> dict[str, str]:
    lines = {}
    for line in output.splitlines():
        if line.startswith("  "):
            name, _, rest = line.strip().partition(" ")
            lines[name] = rest.strip()
    return lines


def test_the_embedded_default_passes_and_every_setting_shows_its_default(tmp_path: Path) -> None:
    code, output = genstudio_check({}, tmp_path)
    assert code == 0, output
    assert output.rstrip().endswith("configuration ok")
    lines = setting_lines(output)
    for name in FULL.keys() - {"UNRELATED", "GENSTUDIO_DATA_DIR"}:  # every group's variables
        assert name in lines, f"{name} missing from genstudio check"
        assert lines[name].endswith("(default)"), (name, lines[name])
    assert lines["GENSTUDIO_DB_POOL_SIZE"] == "10  (default)"
    assert lines["DATABASE_URL"] == "unset  (default)"
    assert lines["GENSTUDIO_DATA_DIR"] == f"{tmp_path / 'data'}  (environment)"
    assert lines["GENSTUDIO_RATE_READS_FREE"].startswith("amount=240, seconds=60")
    assert not (tmp_path / "data").exists()  # checking writes nothing: no kept secrets


def test_a_production_environment_shows_its_sources_and_masks_every_secret(
    tmp_path: Path,
) -> None:
    code, output = genstudio_check(SECRETS, tmp_path)
    assert code == 0, output
    lines = setting_lines(output)
    for name in SECRETS:
        assert lines[name].endswith("(environment)"), (name, lines[name])
    for secret in SECRET_VALUES:
        assert secret not in output
    assert lines["DATABASE_URL"].startswith("postgresql://app:****@db.example.com:5432/app")
    assert lines["SUPABASE_SERVICE_KEY"].startswith("****")
    assert lines["MODAL_BASE_URL"].startswith("https://acme--genstudio.modal.run")
    assert lines["SUPABASE_STORAGE_BUCKET"] == "media  (default)"


def test_apple_in_production_without_its_ids_is_refused_naming_them(tmp_path: Path) -> None:
    code, output = genstudio_check(
        {"APPLE_ENVIRONMENT": "Production", "APPLE_BUNDLE_ID": "com.acme.studio"}, tmp_path
    )
    assert code == 1
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "APPLE_APP_APPLE_ID" in error and "APPLE_ROOT_CERTIFICATES" in error
    assert "APPLE_BUNDLE_ID, APPLE_ENVIRONMENT" in error  # what asked for Apple purchases
    assert output.rstrip().endswith("configuration refused: 1 contradiction")
    # in the sandbox the app's Apple ID is not needed; the roots still are
    code, output = in_process(
        {"APPLE_ENVIRONMENT": "Sandbox", "APPLE_BUNDLE_ID": "com.acme.studio"}
    )
    assert code == 1
    assert "APPLE_APP_APPLE_ID" not in output and "APPLE_ROOT_CERTIFICATES" in output


def test_supabase_storage_without_its_service_key_is_refused(tmp_path: Path) -> None:
    code, output = genstudio_check(
        {"SUPABASE_URL": "https://ref.supabase.co", "SUPABASE_STORAGE_BUCKET": "media-prod"},
        tmp_path,
    )
    assert code == 1
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "SUPABASE_SERVICE_KEY" in error and "SUPABASE_STORAGE_BUCKET" in error
    code, output = in_process({"SUPABASE_SERVICE_KEY": "k"})
    assert code == 1 and "without SUPABASE_URL" in output


def test_a_value_that_does_not_parse_is_refused_naming_the_variable(tmp_path: Path) -> None:
    code, output = genstudio_check({"GENSTUDIO_DB_POOL_SIZE": "many"}, tmp_path)
    assert code == 1
    assert "GENSTUDIO_DB_POOL_SIZE must be a number, not 'many'" in output
    code, output = in_process({"GENSTUDIO_REPORTS_TO_HIDE": "0"})
    assert code == 1 and "GENSTUDIO_REPORTS_TO_HIDE" in output


def test_prepared_statements_behind_supavisors_transaction_pooler_are_refused() -> None:
    env = {
        "DATABASE_URL": "postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
        "SUPABASE_JWKS_URL": "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
    }
    code, output = in_process(env)
    assert code == 1 and "GENSTUDIO_DB_PREPARED" in output and "pw@" not in output
    code, output = in_process({**env, "GENSTUDIO_DB_PREPARED": "off"})
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 0 and errors == [], output


def test_pairs_and_triples_that_only_work_together_are_refused_when_half_set() -> None:
    cases = {
        "MODAL_TOKEN_SECRET": {"MODAL_BASE_URL": "https://m.modal.run", "MODAL_TOKEN_ID": "i"},
        "RUNPOD_ENDPOINTS": {"RUNPOD_API_KEY": "k"},
        "GOOGLE_SERVICE_ACCOUNT": {"GOOGLE_PACKAGE_NAME": "com.acme"},
        "GOOGLE_PUBSUB_SERVICE_ACCOUNT": {
            "GOOGLE_PACKAGE_NAME": "com.acme",
            "GOOGLE_SERVICE_ACCOUNT": '{"private_key": "-", "client_email": "a@b"}',
            "GOOGLE_PUBSUB_AUDIENCE": "https://api.example.com",
        },
        "GENSTUDIO_PUBLIC_URL": {"RUNPOD_WEBHOOK_SECRET": "s"},
        "APPLE_ISSUER_ID": {
            "APPLE_ENVIRONMENT": "Sandbox",
            "APPLE_ROOT_CERTIFICATES": "AAAA",
            "APPLE_BUNDLE_ID": "com.acme",
            "APPLE_PRIVATE_KEY": "k",
            "APPLE_KEY_ID": "i",
        },
    }
    for missing, env in cases.items():
        code, output = in_process(env)
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1, (missing, output)
        assert missing in errors[0], (missing, errors)


def test_warnings_are_printed_but_do_not_refuse() -> None:
    code, output = in_process({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert code == 0
    assert "warning: REDIS_URL without DATABASE_URL" in output
    code, output = in_process({"OPENAI_MODERATION_BASE_URL": "http://127.0.0.1:1/v1"})
    assert code == 0 and "no effect without OPENAI_API_KEY" in output


def test_quiet_prints_only_the_problems(tmp_path: Path) -> None:
    assert in_process({}) == (0, "")
    code, output = genstudio_check({"SUPABASE_SERVICE_KEY": "k"}, tmp_path, "--quiet")
    assert code == 1
    assert [line.split(":")[0] for line in output.splitlines()] == [
        "error",
        "configuration refused",
    ]
