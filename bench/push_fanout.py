"""Sustained push fan-out to Expo's stand-in from one process on one core (issue #18).

The outbox is filled first (``Notifier.tell``: one job-succeeded notification per
user, each user one active device), then timed: ``PushDelivery.deliver_due`` passes,
as the reconciler and the after-commit kicks run them (claim with a lease, read and
render each delivery in the user's language, send through ``ExpoPushClient``: batches
of 100, gzip over 1 KiB, at most 6 requests in flight; record the outcome and the
tickets), until the outbox is empty. Two figures per run:

- ``messages_per_s``: messages Expo's stand-in accepted / the wall-clock time of the
  passes. With ``--rate 600`` (the client's default: Expo's per-project limit, kept by
  the adapter's token bucket) it cannot exceed ~600/s plus the first second's burst;
  ``--rate 0`` lifts the limit to show how much one core has to spare.
- ``cpu_s`` / ``core_share``: the delivery process's CPU time (user + system) and its
  share of the one core it is pinned to.

The delivery runs in this process, pinned to one core (``os.sched_setaffinity``);
the stand-in (``tests/standins/expo.py``, uvicorn in a thread) in a child process
pinned to another core where there is one. ``--store postgres`` (the default, the
production path) keeps the outbox in a fresh, migrated database on ``--pg`` (Postgres'
own processes are not pinned: they are the database's cost, not the sender's);
``--store memory`` keeps it in this process. RSS: the process's peak (VmHWM) and
current (VmRSS) resident size after the run.

    .venv/bin/python -m bench.push_fanout [--messages 12000] [--store postgres|memory]
        [--rate 600] [--senders 2] [--pg postgresql://postgres@127.0.0.1:5432]
        [--out bench/results/<date>-push-fanout.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genstudio.adapters.expo import ExpoPushClient
from genstudio.adapters.notification_texts import TemplateTexts
from genstudio.adapters.system import SystemClock
from genstudio.core.model.notifications import Event, EventKind, Platform, PushToken
from genstudio.core.services.notifications.delivery import DeliveryReport, PushDelivery
from genstudio.core.services.notifications.emit import Notifier
from genstudio.ports.unit_of_work import UnitOfWorkFactory

ROOT = Path(__file__).resolve().parents[1]


def serve_standin() -> None:
    """The child: Expo's stand-in until stdin closes; then how many it accepted."""
    from tests.standins.expo import ExpoStandIn

    standin = ExpoStandIn()
    print(standin.start(), flush=True)
    sys.stdin.read()
    print(json.dumps({"accepted": len(standin.messages), "requests": len(standin.requests)}))
    standin.stop()


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def fill(uow_factory: UnitOfWorkFactory, users: int) -> None:
    """``users`` users, one device each, one job-succeeded notification each."""
    notifier = Notifier()
    now = SystemClock().now()
    for start in range(0, users, 500):
        async with uow_factory() as uow:
            for i in range(start, min(users, start + 500)):
                user = uuid.uuid4()
                await uow.profiles.ensure(user, None)
                await uow.push_tokens.register(
                    PushToken(
                        token=f"ExponentPushToken[bench-{i:012d}-{user.hex[:8]}]",
                        user_id=user,
                        platform=Platform.IOS,
                        device_id=f"device-{i}",
                        app_version="1.0.0",
                        active=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
                job = uuid.uuid4()
                await notifier.tell(
                    uow,
                    Event(
                        user_id=user,
                        kind=EventKind.JOB_SUCCEEDED,
                        key=f"job_succeeded:{job}",
                        data={"jobId": str(job), "jobKind": "image", "model": "flux-schnell"},
                    ),
                    now,
                )
            await uow.commit()


async def deliver_all(delivery: PushDelivery, senders: int, limit: int) -> DeliveryReport:
    """``senders`` delivery loops at once (as kicks and reconciler passes overlap),
    each passing until a pass finds nothing due."""
    totals: dict[str, int] = {"sent": 0, "skipped": 0, "failed": 0, "retrying": 0, "held": 0}

    async def loop() -> None:
        while True:
            report = await delivery.deliver_due(limit=limit)
            for name in totals:
                totals[name] += getattr(report, name)
            if report.handled == 0:
                return

    await asyncio.gather(*(loop() for _ in range(senders)))
    return DeliveryReport(**totals)


def make_store(store: str, pg: str) -> tuple[UnitOfWorkFactory, str | None]:
    if store == "memory":
        from genstudio.adapters.memory import InMemoryUnitOfWorkFactory

        return InMemoryUnitOfWorkFactory(), None
    import psycopg

    from genstudio.adapters.supabase.db import make_engine
    from genstudio.adapters.supabase.migrate import upgrade
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory

    name = f"genstudio_bench_push_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{pg}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(f"{pg}/{name}")
    return SqlUnitOfWorkFactory(make_engine(f"{pg}/{name}", pool_size=10)), name


def drop_database(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    uow_factory, database = make_store(args.store, args.pg)
    try:
        started = time.perf_counter()
        await fill(uow_factory, args.messages)
        filled_s = time.perf_counter() - started
        client = ExpoPushClient(base_url=url, rate=args.rate or None)
        delivery = PushDelivery(uow_factory, client, TemplateTexts(), SystemClock())
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = await deliver_all(delivery, args.senders, args.limit)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await client.aclose()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return {
            "filled_s": round(filled_s, 2),
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "core_share": round(cpu / wall, 3),
            "report": {
                "sent": report.sent,
                "skipped": report.skipped,
                "failed": report.failed,
                "retrying": report.retrying,
                "held": report.held,
            },
            "messages_per_s": round(report.sent / wall, 1),
            "cpu_ms_per_message": round(1000 * cpu / max(1, report.sent), 3),
        }
    finally:
        if database is not None:
            engine = getattr(uow_factory, "engine", None)
            if engine is not None:
                await engine.dispose()
            drop_database(args.pg, database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=12000)
    parser.add_argument("--store", choices=["postgres", "memory"], default="postgres")
    parser.add_argument("--rate", type=float, default=600.0, help="0: no client-side limit")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--limit", type=int, default=500, help="deliveries a pass claims")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.standin:
        serve_standin()
        return

    cores = sorted(os.sched_getaffinity(0))
    mine, theirs = cores[0], cores[1:] or cores[:1]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.push_fanout", "--standin"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    os.sched_setaffinity(child.pid, set(theirs))
    url = child.stdout.readline().strip()
    os.sched_setaffinity(0, {mine})  # the delivery: this process, one core
    try:
        result = asyncio.run(run(args, url))
    finally:
        out, _ = child.communicate("", timeout=30)
    standin = json.loads(out.strip().splitlines()[-1])
    record = {
        "benchmark": "push_fanout",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before_after": os.getloadavg(),
        },
        "settings": {
            "messages": args.messages,
            "store": args.store,
            "rate_limit_per_s": args.rate or None,
            "senders": args.senders,
            "claim_limit": args.limit,
            "delivery_core": mine,
            "standin_cores": theirs,
        },
        **result,
        "standin_accepted": standin["accepted"],
        "standin_requests": standin["requests"],
        "rss_peak_mib": round(memory_kib("VmHWM") / 1024, 1),
        "rss_now_mib": round(memory_kib("VmRSS") / 1024, 1),
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
