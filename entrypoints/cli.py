"""The ``genstudio`` command: serve | worker | scheduler | migrate | classifier | token |
credits grant | demo | openapi | check | backup | restore."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from genstudio.entrypoints.logs import configure_logging
from genstudio.entrypoints.settings import Settings, resolve_secrets


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genstudio", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the HTTP API (and the in-process worker without REDIS_URL)"
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    worker = sub.add_parser("worker", help="run a Taskiq worker (needs REDIS_URL)")
    worker.add_argument(
        "--kinds",
        help="comma-separated job kinds to take (default: all): image,edit,video,training",
    )
    sub.add_parser(
        "scheduler", help="run the Taskiq scheduler that drives the reconciler (needs REDIS_URL)"
    )
    sub.add_parser("migrate", help="apply database migrations")
    classifier = sub.add_parser(
        "classifier",
        help="serve the image classifier (NudeNet) over HTTP for the API and workers "
        "(they use it with GENSTUDIO_CLASSIFIER_URL)",
    )
    classifier.add_argument("--host", help="default: HOST, else 127.0.0.1")
    classifier.add_argument(
        "--port", type=int, help="default: GENSTUDIO_CLASSIFIER_PORT, else 8010"
    )
    token = sub.add_parser("token", help="mint a Supabase-style access token (HS256)")
    token.add_argument("--user", type=_uuid, default=None, help="user id (default: a new one)")
    token.add_argument("--email")
    token.add_argument("--role", default="authenticated", choices=["authenticated", "service_role"])
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default a day)")
    credits = sub.add_parser("credits", help="credit operations")
    csub = credits.add_subparsers(dest="credits_command", required=True)
    grant = csub.add_parser("grant", help="grant credits to a user")
    grant.add_argument("user", type=_uuid)
    grant.add_argument("amount", type=int)
    grant.add_argument("--reason", default="operator grant")
    grant.add_argument(
        "--key", help="idempotency key (default: a new one; reuse it to retry safely)"
    )
    grant.add_argument("--expires-in-days", type=float)
    demo = sub.add_parser(
        "demo",
        help="create a user, grant credits, run an image, an edit and a video job, "
        "print the results, the ledger and the balance",
    )
    demo.add_argument(
        "--url",
        help="a running service (default: http://HOST:PORT if it answers, "
        "else one started for the demo on a free port)",
    )
    demo.add_argument("--credits", type=int, default=40, help="credits to grant (default 40)")
    openapi = sub.add_parser(
        "openapi", help="print the OpenAPI document the API serves at /schema/openapi.json"
    )
    openapi.add_argument("-o", "--output", help="write it to this file instead of stdout")
    check = sub.add_parser(
        "check",
        help="print every setting with its source (environment or default; secrets masked) "
        "and refuse contradictions (exit 1, naming the variables)",
    )
    check.add_argument("--quiet", action="store_true", help="print only the problems")
    sub.add_parser(
        "backup",
        help="pg_dump the database into the configured media storage (backups/...): "
        "local files, or Supabase Storage",
    )
    restore = sub.add_parser(
        "restore",
        help="restore a backup into an empty database, in one transaction, and check its "
        "rows per table against the backup's manifest",
    )
    restore.add_argument("key", nargs="?", help="the backup's key (default: the latest)")
    restore.add_argument("--file", type=Path, help="an archive file (its .json manifest beside)")
    restore.add_argument(
        "--database-url",
        help="the empty database to restore into (default: DATABASE_URL, else the "
        "embedded one of GENSTUDIO_DATA_DIR)",
    )
    return p


def _freeze_startup_objects() -> None:
    """Move what importing and building the app made (~170,000 objects: modules, the
    table metadata, the routes) out of the collector's sight: they live as long as
    the process, and a full collection walking them took ~50-100 ms (a latency
    spike on whichever requests were in flight). Requests' garbage is collected as
    before."""
    gc.collect()
    gc.freeze()


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import msgspec
    import uvicorn

    from genstudio.entrypoints.http.app import create_app
    from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol

    server = msgspec.structs.replace(
        settings.server, host=host or settings.server.host, port=port or settings.server.port
    )
    settings = msgspec.structs.replace(settings, server=server)
    app = create_app(settings)
    _freeze_startup_objects()
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        http=CorkedHttpToolsProtocol,  # a response in one write (entrypoints/http/server.py)
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def _classifier(host: str | None, port: int | None) -> None:
    import os

    from genstudio.entrypoints.classifier import DEFAULT_PORT, run_classifier
    from genstudio.entrypoints.settings.server import log_format

    configure_logging(
        os.environ.get("GENSTUDIO_LOG_LEVEL", "INFO").upper(),
        log_format=log_format(os.environ.get("GENSTUDIO_LOG_FORMAT")),
    )
    env_port = os.environ.get("GENSTUDIO_CLASSIFIER_PORT", "").strip()
    if port is None and env_port and not env_port.isdigit():
        raise SystemExit("GENSTUDIO_CLASSIFIER_PORT must be a port number")
    run_classifier(
        host or os.environ.get("HOST") or "127.0.0.1",
        port or (int(env_port) if env_port else DEFAULT_PORT),
    )


def _openapi(settings: Settings, output: str | None) -> None:
    """The document as the app serves it, built without starting it (no database, no
    network): what the typed client (clients/typescript) is generated from."""
    import json

    from genstudio.entrypoints.http.app import create_app

    text = json.dumps(create_app(settings).openapi_schema.to_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)


async def _migrate(settings: Settings) -> None:
    from genstudio.adapters.supabase.migrate import upgrade
    from genstudio.entrypoints.runtime import database_url

    async with database_url(settings) as url:  # the embedded server is migrated as it starts
        if settings.database.url is not None:
            await asyncio.to_thread(upgrade, url)
    print("migrations applied")


def _token(settings: Settings, args: argparse.Namespace) -> None:
    from genstudio.adapters.supabase.auth import mint_token

    settings = resolve_secrets(settings)
    if settings.supabase.jwt_secret is None:
        raise SystemExit("no SUPABASE_JWT_SECRET: tokens of a JWKS project come from Supabase Auth")
    user = args.user or uuid.uuid4()
    print(
        mint_token(
            settings.supabase.jwt_secret,
            user_id=user,
            email=args.email,
            role=args.role,
            ttl_seconds=args.ttl,
            issuer=settings.supabase.token_issuer,
        )
    )


async def _grant(
    settings: Settings,
    user: uuid.UUID,
    amount: int,
    *,
    reason: str = "operator grant",
    key: str | None = None,
    expires_in_days: float | None = None,
) -> int:
    from genstudio.core.model.errors import InvalidInput
    from genstudio.core.services.credits import grant_credits
    from genstudio.entrypoints.runtime import open_runtime

    if amount <= 0:
        raise SystemExit("the amount must be a positive number of credits")
    async with open_runtime(settings, in_process_worker=False) as runtime:
        c = runtime.container
        now = c.clock().now()
        expires = now + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            entry = await grant_credits(
                c.uow_factory(),
                user_id=user,
                amount=amount,
                reference=reason,
                idempotency_key=key or f"cli:{uuid.uuid4()}",
                now=now,
                expires_at=expires,
                realtime=c.realtime(),  # an open app hears its new balance (issue #18)
            )
        except InvalidInput as exc:  # a clear line, not the database's traceback
            raise SystemExit(f"credits grant: {exc.message}") from None
    return entry.balance_after


def grant(
    settings: Settings,
    user: uuid.UUID,
    amount: int,
    *,
    reason: str = "operator grant",
    key: str | None = None,
    expires_in_days: float | None = None,
) -> int:
    """``genstudio credits grant``: grant credits in the configured database (the
    embedded one is attached to, and shared with a running service); the balance after."""
    return asyncio.run(
        _grant(settings, user, amount, reason=reason, key=key, expires_in_days=expires_in_days)
    )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "check":  # before the settings are read: it reports what does not parse
        import os

        from genstudio.entrypoints.check import run

        raise SystemExit(run(os.environ, quiet=args.quiet))
    if args.command == "classifier":  # needs none of the service's settings
        _classifier(args.host, args.port)
        return
    settings = Settings.from_env()
    quiet = args.command in ("token", "demo", "openapi")
    configure_logging(
        "WARNING" if quiet else settings.server.log_level, log_format=settings.server.log_format
    )
    if args.command == "serve":
        _serve(settings, args.host, args.port)
    elif args.command == "worker":
        from genstudio.entrypoints.worker import run_worker

        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
        _freeze_startup_objects()
        asyncio.run(run_worker(settings, kinds))
    elif args.command == "scheduler":
        from genstudio.entrypoints.worker import run_scheduler

        asyncio.run(run_scheduler(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "token":
        _token(settings, args)
    elif args.command == "credits":
        balance = grant(
            settings,
            args.user,
            args.amount,
            reason=args.reason,
            key=args.key,
            expires_in_days=args.expires_in_days,
        )
        print(f"granted {args.amount} credits to {args.user}; balance {balance}")
    elif args.command == "openapi":
        _openapi(settings, args.output)
    elif args.command in ("backup", "restore"):
        from genstudio.entrypoints.backup import run_backup, run_restore

        if args.command == "backup":
            raise SystemExit(run_backup(settings))
        raise SystemExit(
            run_restore(settings, args.key, file=args.file, database_url=args.database_url)
        )
    elif args.command == "demo":
        from genstudio.entrypoints.demo import run_demo

        raise SystemExit(run_demo(settings, url=args.url, credits=args.credits))


if __name__ == "__main__":
    main(sys.argv[1:])
