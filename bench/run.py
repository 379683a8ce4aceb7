"""The genstudio benchmark: ``make bench`` (``python -m bench.run``).

1. Submission: authenticated ``POST /v1/generate/image`` (a fresh Idempotency-Key
   each, many users) against ``genstudio serve`` processes on a fresh database and
   a dedicated Redis db, at rising concurrency, with no worker running; and
   ``pgbench`` running the same SQL transaction (bench/submission.pgbench) at the
   same client counts on the same database. The service's throughput is reported
   as a ratio of pgbench's: the physical limit of a durable submission here.
2. End to end: N jobs submitted up front, then ``genstudio worker`` and
   ``genstudio scheduler`` started; jobs per second until all succeeded, and the
   worker's resident memory sampled during the run.

Everything runs on loopback, bounded in time; processes and the databases it
creates are removed at the end, whatever happens. Results go to
``bench/results/<date>-<desc>.json`` and a table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from bench import tools as bench_tools

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
#: the server, as a libpq URI without a database; a socket directory goes in the query
#: (``postgresql://postgres@:5432?host=/var/run/postgresql``)
PG_SERVER = os.environ.get("GENSTUDIO_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("GENSTUDIO_BENCH_REDIS", "redis://127.0.0.1:6379/11")
SECRET = "bench-secret-" + "x" * 40
GENSTUDIO = [sys.executable, "-m", "genstudio.entrypoints.cli"]
SINGLE_USER = 999_999  # the user of the single-user rows; the many are 1..users
WIDTH = HEIGHT = 512  # what bench/submit.lua and bench/loadgen.py ask for


def user_id(n: int) -> uuid.UUID:
    """Deterministic user ids, so pgbench can name the same users from a number."""
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


def pg_url(database: str) -> str:
    """``PG_SERVER`` naming ``database`` (before any query: a socket directory)."""
    base, sep, query = PG_SERVER.partition("?")
    return f"{base}/{database}{sep}{query}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- processes and databases, all cleaned up -----------------------------------------------


class Lab:
    """Databases and processes this run made; ``close`` removes them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.databases: list[str] = []
        self.pgbench = "pgbench"  # the one bench.tools found or installed

    def database(self, tag: str) -> str:
        from genstudio.adapters.supabase.migrate import upgrade

        name = f"genstudio_bench_{tag}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        url = pg_url(name)
        upgrade(url)
        return url

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed by the child's end
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def logs(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)
        for name in self.databases:
            try:
                with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # keep cleaning up the rest
                log(f"could not drop {name}: {exc}")
        with contextlib.suppress(Exception):
            redis.Redis.from_url(REDIS_URL).flushdb()


#: the load is a few users at thousands of requests a minute: budgets no run reaches,
#: so that the rate limits' counting (in Redis) is measured but refuses nothing
RATE_BUDGETS = {
    f"GENSTUDIO_RATE_{cls}_{who}": "100000000/60"
    for cls in ("SUBMISSIONS", "READS", "WRITES", "UPLOADS")
    for who in ("FREE", "SUBSCRIBER", "IP")
}


def service_env(db_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "SUPABASE_JWT_SECRET": SECRET,
        "GENSTUDIO_DATA_DIR": str(workdir / "data"),
        **RATE_BUDGETS,
        **extra,
    }


def wait_ready(lab: Lab, ports: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        for name, proc in lab.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{lab.logs(name)}")
        port = pending[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API on {port} was not ready after {timeout}s")
        time.sleep(0.2)


def start_api(lab: Lab, env: dict[str, str], count: int) -> list[int]:
    ports = []
    for i in range(count):
        port = free_port()
        lab.start(f"api{i}", [*GENSTUDIO, "serve", "--port", str(port)], {**env, "PORT": str(port)})
        ports.append(port)
    wait_ready(lab, ports)
    return ports


# --- users --------------------------------------------------------------------------------


async def _seed(url: str, numbers: list[int], credits: int) -> None:
    from genstudio.adapters.supabase.db import make_engine
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
    from genstudio.core.services.credits import grant_credits

    engine = make_engine(url, pool_size=8)
    factory = SqlUnitOfWorkFactory(engine)
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> None:
        async with gate:
            await grant_credits(
                factory,
                user_id=user_id(n),
                amount=credits,
                reference="bench",
                idempotency_key=f"bench-seed-{n}",
                now=datetime.now(UTC),
                email=f"user{n}@bench.example",
            )

    try:
        await asyncio.gather(*(one(n) for n in numbers))
    finally:
        await engine.dispose()


def seed_users(url: str, numbers: list[int], credits: int) -> None:
    """Each user gets one lot (bench/submission.pgbench relies on it) by the core service."""
    asyncio.run(_seed(url, numbers, credits))


def mint_tokens(numbers: list[int]) -> list[str]:
    """The bench users' bearer tokens, valid for two hours."""
    from genstudio.adapters.supabase.auth import mint_token

    return [
        mint_token(SECRET, user_id=user_id(n), email=f"user{n}@bench.example", ttl_seconds=7200)
        for n in numbers
    ]


def write_tokens(path: Path, numbers: list[int]) -> Path:
    path.write_text("\n".join(mint_tokens(numbers)) + "\n")
    return path


# --- latency distributions ----------------------------------------------------------------


def quantiles_from_grids(parts: list[dict[str, Any]]) -> dict[str, float]:
    """Merge load generators' quantile grids (weighted by their request counts)."""
    points: list[tuple[int, float]] = []
    for part in parts:
        grid = part.get("grid") or []
        if grid and part["requests"]:
            weight = part["requests"] / len(grid)
            points.extend((us, weight) for us in grid)
    if not points:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan")}
    points.sort()
    total = sum(w for _, w in points)
    out = {}
    for label, q in (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99)):
        acc = 0.0
        for us, w in points:
            acc += w
            if acc >= q * total:
                out[label] = round(us / 1000, 2)
                break
    return out


def quantiles(samples_us: list[float]) -> dict[str, float]:
    s = sorted(samples_us)
    n = len(s)
    if not n:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan")}
    pick = {q: s[min(n - 1, int(q * n))] / 1000 for q in (0.5, 0.9, 0.99)}
    return {
        "p50_ms": round(pick[0.5], 2),
        "p90_ms": round(pick[0.9], 2),
        "p99_ms": round(pick[0.99], 2),
    }


# --- submission load ----------------------------------------------------------------------


def http_load(
    ports: list[int], concurrency: int, duration: float, tokens: Path, prefix: str, tool: str
) -> dict[str, Any]:
    """Split ``concurrency`` connections over the API processes; merge what they saw."""
    shares = [
        concurrency // len(ports) + (1 if i < concurrency % len(ports) else 0)
        for i in range(len(ports))
    ]
    procs = []
    env = {**os.environ, "BENCH_TOKENS": str(tokens)}
    for i, (port, share) in enumerate(zip(ports, shares, strict=True)):
        if share == 0:
            continue
        url = f"http://127.0.0.1:{port}"
        if tool == "wrk":
            args = [
                "wrk", "-t1", f"-c{share}", f"-d{duration:g}s", "--timeout", "10s",
                "-s", str(BENCH / "submit.lua"), f"{url}/v1/generate/image",
            ]  # fmt: skip
            env_i = {**env, "BENCH_PREFIX": f"{prefix}-{i}"}
        else:
            args = [
                sys.executable, "-m", "bench.loadgen", "--url", url,
                "--concurrency", str(share), "--duration", str(duration),
                "--tokens", str(tokens), "--prefix", f"{prefix}-{i}",
            ]  # fmt: skip
            env_i = env
        procs.append(
            subprocess.Popen(
                args, cwd=ROOT, env=env_i, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    return merged_load(procs, duration, tool)


def merged_load(procs: list[subprocess.Popen[bytes]], duration: float, tool: str) -> dict[str, Any]:
    """The load generators' results (each prints one ``BENCH_JSON`` line: wrk through
    its Lua script, bench/loadgen.py) as one: requests, rate, errors and latency
    quantiles over all of them. A generator that outlives ``duration`` by a minute is
    killed."""
    parts = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        line = next((x for x in out.decode().splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"{tool} gave no result: {err.decode()[-2000:]}")
        parts.append(json.loads(line.removeprefix("BENCH_JSON ")))
    requests = sum(p["requests"] for p in parts)
    seconds = max(p["duration_us"] for p in parts) / 1e6
    errors = sum(
        p[k]
        for p in parts
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return {
        "requests": requests,
        "seconds": round(seconds, 2),
        "rps": round(requests / seconds, 1),
        "errors": errors,
        **quantiles_from_grids(parts),
        "max_ms": round(max(p["max_us"] for p in parts) / 1000, 2),
    }


def pgbench(
    db_name: str,
    clients: int,
    duration: float,
    *,
    first: int,
    nusers: int,
    cost: int,
    lab: Lab,
) -> dict[str, Any]:
    exe = lab.pgbench
    logdir = Path(tempfile.mkdtemp(prefix=f"pgbench-{clients}-", dir=lab.workdir))
    server = conninfo_to_dict(PG_SERVER)
    args = [
        exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(int(duration)), "-f", str(BENCH / "submission.pgbench"),
        "-D", f"nusers={nusers}", "-D", f"first={first}", "-D", f"cost={cost}",
        "-l", f"--log-prefix={logdir}/tx",
        "-h", str(server.get("host", "127.0.0.1")), "-p", str(server.get("port", 5432)),
        "-U", str(server.get("user", "postgres")), db_name,
    ]  # fmt: skip
    backends = postgres_pids()
    for _attempt in range(5):
        out = subprocess.run(args, capture_output=True, timeout=duration + 60, cwd=logdir)
        err = out.stderr.decode()
        if out.returncode == 0 or "too many clients" not in err:
            break
        # the server is shared: wait for connection slots rather than fail the run
        log("pgbench: the server has no connection slots free; retrying in 5 s")
        for path in logdir.iterdir():
            path.unlink()
        time.sleep(5)
    # its backends exit just after it: wait until the postmaster has reaped them, so that
    # the next reading finds their CPU in the postmaster's children's times (one reaped
    # between the reading of the postmaster's times and of its own is counted in
    # neither: run M lost a whole 1-client pgbench's Postgres CPU that way)
    if not wait_reaped(postgres_pids() - backends):
        log("pgbench: its backends did not exit within 10 s; their CPU may be miscounted")
    text = out.stdout.decode()
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {err[-2000:]}")
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps: {text[-2000:]}")
    tps = float(found.group(1))
    failed = re.search(r"number of failed transactions: (\d+)", text)
    lat = []
    for path in logdir.iterdir():
        for row in path.read_text().splitlines():
            fields = row.split()
            if len(fields) >= 3:
                lat.append(float(fields[2]))
    return {
        "transactions": len(lat),
        "tps": round(tps, 1),
        "failed": int(failed.group(1)) if failed else 0,
        **quantiles(lat),
    }


def scalar(conn: psycopg.Connection[tuple[Any, ...]], query: str) -> Any:
    """The first column of the one row ``query`` returns."""
    row = conn.execute(query).fetchone()
    assert row is not None, query
    return row[0]


def count_jobs(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(scalar(conn, "SELECT count(*) FROM jobs"))


def submission_phase(lab: Lab, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from genstudio.core.model.pricing import DEFAULT_CATALOG

    cost = DEFAULT_CATALOG.image_price("flux-schnell", WIDTH, HEIGHT, 1)
    url = lab.database("submit")
    db_name = str(conninfo_to_dict(url)["dbname"])
    many = list(range(1, args.users + 1))
    log(f"seeding {args.users} users and a single user on {db_name}")
    seed_users(url, [*many, SINGLE_USER], args.credits)
    tokens = write_tokens(lab.workdir / "tokens.txt", many)
    single_tokens = write_tokens(lab.workdir / "token-single.txt", [SINGLE_USER])
    env = service_env(
        url,
        lab.workdir,
        GENSTUDIO_DB_POOL_SIZE=str(args.pool_size),
        GENSTUDIO_LOG_LEVEL=args.log_level,
    )
    ports = start_api(lab, env, args.api_procs)
    log(f"API up on {ports} (no worker: jobs only queue); load with {args.tool}")
    http_load(ports, max(args.levels), min(3.0, args.duration), tokens, "warm", args.tool)
    pids = [lab.procs[f"api{i}"].pid for i in range(args.api_procs)]
    # pgbench warms up too (it prepares its statements per connection)
    pgbench(db_name, max(args.levels), 2, first=1, nusers=args.users, cost=cost, lab=lab)
    # each level: the service, then pgbench at once, so that both see the same machine
    # (it is shared: other work comes and goes by the minute). The API processes stay
    # up, idle, holding their pooled connections. The levels are measured in rounds
    # (every level once, then again), so that a level's repetitions see different
    # minutes of the machine, and each level is summarised by its medians.
    reps: dict[int, list[dict[str, Any]]] = {c: [] for c in args.levels}
    for r in range(args.repeat):
        for c in args.levels:
            before, cpu = count_jobs(url), cpu_now(pids)
            tag = f"c{c}-{uuid.uuid4().hex[:6]}"
            svc = http_load(ports, c, args.duration, tokens, tag, args.tool)
            used = cpu_ms_per(cpu, cpu_now(pids), svc["requests"])
            svc["api_cpu_ms_per_request"] = used["api"]
            svc["pg_cpu_ms_per_request"] = used["pg"]
            svc["machine_cpu_ms_per_request"] = used["machine"]
            svc["jobs_committed"] = count_jobs(url) - before
            svc["loadavg"] = loadavg()
            cpu = cpu_now(pids)
            pgb = pgbench(db_name, c, args.duration, first=1, nusers=args.users, cost=cost, lab=lab)
            used = cpu_ms_per(cpu, cpu_now(pids), pgb["transactions"])
            pgb["pg_cpu_ms_per_tx"] = used["pg"]
            pgb["machine_cpu_ms_per_tx"] = used["machine"]
            pgb["loadavg"] = loadavg()
            reps[c].append(_row(c, args.users, svc, pgb))
            log(
                f"round {r + 1}/{args.repeat} c={c}: service {svc['rps']} req/s,"
                f" p99 {svc['p99_ms']} ms, API CPU {svc['api_cpu_ms_per_request']} ms/req;"
                f" pgbench {pgb['tps']} tps, p99 {pgb['p99_ms']} ms;"
                f" ratio {reps[c][-1]['ratio']}"
            )
    rows = [_median_row(reps[c]) for c in args.levels]
    result["submission"] = rows
    c1 = args.single_user_concurrency
    single = http_load(
        ports, c1, args.duration, single_tokens, f"one-{uuid.uuid4().hex[:6]}", args.tool
    )
    single["loadavg"] = loadavg()
    log(f"single user c={c1}: service {single['rps']} req/s, p99 {single['p99_ms']} ms")
    pgb = pgbench(db_name, c1, args.duration, first=SINGLE_USER, nusers=1, cost=cost, lab=lab)
    pgb["loadavg"] = loadavg()
    result["single_user"] = _row(c1, 1, single, pgb)
    log(f"single user c={c1}: pgbench {pgb['tps']} tps; ratio {result['single_user']['ratio']}")
    for i in range(args.api_procs):
        lab.stop(f"api{i}")


def _row(c: int, users: int, svc: dict[str, Any], pgb: dict[str, Any]) -> dict[str, Any]:
    ratio = round(svc["rps"] / pgb["tps"], 3) if pgb.get("tps") else None
    return {"concurrency": c, "users": users, "service": svc, "pgbench": pgb, "ratio": ratio}


def _median_row(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """A level's repetitions summarised by the median of each figure (the ratio: the
    median of the paired ratios, each repetition's service and pgbench measured back
    to back); the repetitions themselves are kept under ``reps``."""

    def med(side: str, key: str) -> float:
        return round(statistics.median(float(r[side][key]) for r in reps), 2)

    service: dict[str, float | list[float]] = {
        k: med("service", k)
        for k in (
            "rps",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "api_cpu_ms_per_request",
            "pg_cpu_ms_per_request",
            "machine_cpu_ms_per_request",
        )
    }
    service["errors"] = sum(int(r["service"]["errors"]) for r in reps)
    service["rps_range"] = [
        min(r["service"]["rps"] for r in reps),
        max(r["service"]["rps"] for r in reps),
    ]
    pgbench = {
        k: med("pgbench", k)
        for k in ("tps", "p50_ms", "p99_ms", "pg_cpu_ms_per_tx", "machine_cpu_ms_per_tx")
    }
    ratios = [r["ratio"] for r in reps if r["ratio"] is not None]
    return {
        "concurrency": reps[0]["concurrency"],
        "users": reps[0]["users"],
        "service": service,
        "pgbench": pgbench,
        "ratio": round(statistics.median(ratios), 3) if ratios else None,
        "reps": reps,
    }


def loadavg() -> str:
    """The machine's load average when a measurement ended (others may share it)."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return ""


# --- end to end ---------------------------------------------------------------------------


def modal_wired() -> bool:
    """Whether genstudio.entrypoints.gpus.build_gpus adds Modal when MODAL_* are set."""
    try:
        from genstudio.entrypoints.gpus import build_gpus
        from genstudio.entrypoints.settings import ModalSettings, Settings

        class _Local:
            name = "local"

        settings = Settings(
            modal=ModalSettings(base_url="http://127.0.0.1:9", token_id="k", token_secret="s"),
        )
        return "modal" in build_gpus(settings, _Local)  # type: ignore[arg-type]
    except Exception as exc:
        log(f"could not tell whether Modal is wired: {exc!r}")
        return False


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """A process's name and the fields of /proc/<pid>/stat after it (None: gone).
    Field 1 is the parent; 11 and 12 its user and system ticks; 13 and 14 those of
    the children it has waited for."""
    try:
        head, _, tail = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return None
    return head.partition("(")[2], tail.split()


def cpu_now(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the API processes, the Postgres server and the machine."""
    return {
        "api": cpu_seconds(pids),
        "pg": postgres_cpu_seconds(),
        "machine": machine_cpu_seconds(),
    }


def cpu_ms_per(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Each figure's CPU milliseconds per unit of work between two ``cpu_now``."""
    return {k: round(1000 * (after[k] - before[k]) / max(1, n), 2) for k in before}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far."""
    stats = [stat for pid in pids if (stat := _stat(pid)) is not None]
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> set[int]:
    """The Postgres server's processes now (exiting ones not yet reaped included)."""
    return {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (stat := _stat(entry.name)) is not None
        and stat[0] == "postgres"
    }


def wait_reaped(pids: set[int], timeout: float = 10.0) -> bool:
    """Wait until none of ``pids`` exists any more (exited and reaped by its parent);
    False if some still do after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def postgres_cpu_seconds() -> float:
    """CPU time the Postgres server used so far: its live processes, and (through the
    postmaster's children's times) the backends that have exited, e.g. pgbench's."""
    stats = {
        int(entry.name): stat
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (stat := _stat(entry.name)) is not None
    }
    total = 0
    for comm, fields in stats.values():
        if comm != "postgres":
            continue
        total += int(fields[11]) + int(fields[12])
        parent = stats.get(int(fields[1]))
        if parent is None or parent[0] != "postgres":  # the postmaster
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def e2e_phase(lab: Lab, args: argparse.Namespace, result: dict[str, Any]) -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()
    url = lab.database("e2e")
    n_users = max(1, args.jobs // 2)  # two jobs each: within the per-user in-flight limit
    numbers = list(range(1, n_users + 1))
    seed_users(url, numbers, 1000)
    tokens = [
        t for t in write_tokens(lab.workdir / "tokens-e2e.txt", numbers).read_text().split() if t
    ]
    extra = {
        "GENSTUDIO_WORKER_CONCURRENCY": str(args.worker_concurrency),
        "GENSTUDIO_POLL_INTERVAL": "0.05",
        "GENSTUDIO_LOG_LEVEL": args.log_level,
        "GENSTUDIO_DB_POOL_SIZE": str(args.pool_size),
    }
    standin = None
    gpu = "local preview renderer (gpu_local, 64x64 PNG) - Modal is not wired in build_gpus"
    if modal_wired():
        sys.path.insert(0, str(ROOT))
        from tests.standins.modal import ModalStandin

        standin = ModalStandin(token_id="bench-key", token_secret="bench-secret")
        standin.knobs.job_seconds = 0.0
        standin.knobs.queue_seconds = 0.0
        standin.start()
        extra.update(
            MODAL_BASE_URL=standin.base_url,
            MODAL_TOKEN_ID="bench-key",
            MODAL_TOKEN_SECRET="bench-secret",
        )
        gpu = "Modal stand-in (tests/standins/modal.py), instant, 64x64 PNG as base64"
    try:
        env = service_env(url, lab.workdir, **extra)
        (port,) = start_api(lab, env, 1)
        log(f"submitting {args.jobs} jobs (64x64) with no worker running")
        submitted = asyncio.run(_submit_all(port, tokens, args.jobs))
        lab.stop("api0")
        log("starting genstudio worker + scheduler")
        t0 = time.monotonic()
        worker = lab.start("worker", [*GENSTUDIO, "worker", "--kinds", "image"], env)
        lab.start("scheduler", [*GENSTUDIO, "scheduler"], env)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                kib = rss_kib(worker.pid)
                if kib is not None:
                    samples.append((time.monotonic() - t0, kib))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        first_done = last_done = None
        counts: dict[str, int] = {}
        deadline = t0 + args.e2e_timeout
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                counts = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
                done = counts.get("succeeded", 0)
                now = time.monotonic() - t0
                if done and first_done is None:
                    first_done = now
                if done + counts.get("failed", 0) >= submitted:
                    last_done = now
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited:\n{lab.logs('worker')}")
                time.sleep(0.05)
            providers: dict[str, int] = dict(
                conn.execute("SELECT coalesce(provider, '-'), count(*) FROM jobs GROUP BY 1")
            )
        time.sleep(1.0)  # a second of idle after the drain
        stop.set()
        sampler.join()
    finally:
        for name in ("worker", "scheduler", "api0"):
            lab.stop(name)
        if standin is not None:
            standin.stop()
    kib = [k for _, k in samples]
    busy = [
        k
        for t, k in samples
        if first_done is not None and last_done and first_done <= t <= last_done
    ]
    succeeded = counts.get("succeeded", 0)
    result["e2e"] = {
        "gpu": gpu,
        "jobs": submitted,
        "succeeded": succeeded,
        "failed": counts.get("failed", 0),
        "providers": providers,
        "worker_concurrency": args.worker_concurrency,
        "seconds_from_worker_start": round(last_done, 2) if last_done else None,
        "seconds_first_to_last": round(last_done - first_done, 2)
        if last_done and first_done
        else None,
        "jobs_per_s": round(succeeded / last_done, 1) if last_done else None,
        "jobs_per_s_after_first": round((succeeded - 1) / (last_done - first_done), 1)
        if last_done and first_done and last_done > first_done
        else None,
        "worker_rss_mib": {
            "peak": round(max(kib) / 1024, 1) if kib else None,
            "steady": round(statistics.median(busy[len(busy) // 2 :]) / 1024, 1) if busy else None,
            "after_drain": round(kib[-1] / 1024, 1) if kib else None,
        },
    }
    if succeeded < submitted:
        log(f"only {succeeded} of {submitted} jobs succeeded in {args.e2e_timeout}s: {counts}")


async def _submit_all(port: int, tokens: list[str], n: int) -> int:
    body = {"model": "flux-schnell", "prompt": "a lighthouse at dusk", "width": 64, "height": 64}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

        async def one(i: int) -> bool:
            async with gate:
                r = await client.post(
                    "/v1/generate/image",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {tokens[i % len(tokens)]}",
                        "Idempotency-Key": f"e2e-{i}-{uuid.uuid4().hex}",
                    },
                )
                return r.status_code == 202

        ok = await asyncio.gather(*(one(i) for i in range(n)))
    if not all(ok):
        log(f"{ok.count(False)} of {n} submissions were refused")
    return sum(ok)


# --- report -------------------------------------------------------------------------------


def python_speed_ms() -> float:
    """A fixed piece of pure-Python work (the median of five timings): how fast this
    machine runs the interpreter right now. The machine is shared, and what it gives
    the API processes moves with it from run to run."""

    def work() -> int:
        table: dict[int, str] = {}
        for i in range(200_000):
            table[i % 1000] = str(i)
        return len(table)

    times = []
    for _ in range(5):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    mem = ""
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    with psycopg.connect(pg_url("postgres")) as conn:
        pg = scalar(conn, "SHOW server_version")
        settings = {
            name: scalar(conn, f"SHOW {name}")
            for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
        }
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "postgres": pg,
        "postgres_settings": settings,
        "kernel": platform.release(),
        "python_speed_ms_at_start": python_speed_ms(),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "Submission: POST /v1/generate/image vs pgbench running the same transaction",
        f"{'conc':>5} {'users':>6} | {'svc req/s':>9} {'p50':>7} {'p90':>7} {'p99':>7} {'err':>4}"
        f" {'cpu/req':>7} | {'pgb tps':>8} {'p50':>7} {'p99':>7} | {'ratio':>6}",
    ]
    rows = list(result.get("submission", []))
    if "single_user" in result:
        rows.append(result["single_user"])
    for row in rows:
        s, p = row["service"], row["pgbench"]
        lines.append(
            f"{row['concurrency']:>5} {row['users']:>6} | {s['rps']:>9.1f} {s['p50_ms']:>7.2f}"
            f" {s['p90_ms']:>7.2f} {s['p99_ms']:>7.2f} {s['errors']:>4}"
            f" {s.get('api_cpu_ms_per_request', float('nan')):>7.2f}"
            f" | {p['tps']:>8.1f} {p['p50_ms']:>7.2f} {p['p99_ms']:>7.2f} | {row['ratio']:>6.1%}"
        )
    lines.append(
        "(medians over the rounds; latencies in ms; cpu/req: API processes' CPU ms per request;"
        " ratio = service req/s / pgbench tps at the same concurrency, measured back to back)"
    )
    speed = result.get("machine", {})
    if "python_speed_ms_at_start" in speed:
        lines.append(
            f"(this machine's pure-Python speed: {speed['python_speed_ms_at_start']} ms at the"
            f" start, {speed.get('python_speed_ms_at_end', '?')} ms at the end; less is faster)"
        )
    cpu_rows = [r for r in result.get("submission", []) if "pg_cpu_ms_per_tx" in r["pgbench"]]
    if cpu_rows:
        lines += [
            "",
            "CPU per submission, ms (both cores; machine: everything that ran, the load"
            " generator and other tenants' work included)",
            f"{'conc':>5} | {'svc: API':>9} {'Postgres':>9} {'machine':>8} |"
            f" {'pgbench: Postgres':>18} {'machine':>8}",
        ]
        for row in cpu_rows:
            s, p = row["service"], row["pgbench"]
            lines.append(
                f"{row['concurrency']:>5} | {s['api_cpu_ms_per_request']:>9.2f}"
                f" {s['pg_cpu_ms_per_request']:>9.2f} {s['machine_cpu_ms_per_request']:>8.2f} |"
                f" {p['pg_cpu_ms_per_tx']:>18.2f} {p['machine_cpu_ms_per_tx']:>8.2f}"
            )
    aims = result.get("aims")
    if aims:
        lines.append("")

        def verdict(at: dict[str, Any]) -> str:
            rounds = ", ".join(f"{r:.1%}" for r in at["round_ratios"])
            return (
                f"{at['concurrency']} clients, {at['rps']} req/s: ratio {at['ratio']:.1%}"
                f" (aim >= 50%: {'met' if at['ratio_met'] else 'MISSED'}"
                f"{f'; the rounds: {rounds}' if rounds else ''}), p99 {at['p99_ms']} ms"
                f" (aim < 50 ms: {'met' if at['p99_met'] else 'MISSED'})"
            )

        lines.append(f"best concurrency ({aims['rule']}): {verdict(aims)}")
        lines.append(f"highest throughput: {verdict(aims['peak'])}")
    e = result.get("e2e")
    if e:
        rss = e["worker_rss_mib"]
        lines += [
            "",
            f"End to end ({e['gpu']}; worker concurrency {e['worker_concurrency']}):",
            f"  {e['succeeded']}/{e['jobs']} succeeded ({e['failed']} failed) in"
            f" {e['seconds_from_worker_start']} s from worker start: {e['jobs_per_s']} jobs/s"
            f" ({e['jobs_per_s_after_first']} jobs/s after the first success)",
            f"  worker RSS: peak {rss['peak']} MiB, steady {rss['steady']} MiB,"
            f" after drain {rss['after_drain']} MiB",
        ]
    used = result.get("tools") or {}
    if used:
        lines.append("")
        lines += [
            f"{role.replace('_', ' ')}: {tool['version']} ({tool['path']})"
            for role, tool in used.items()
        ]
    return "\n".join(lines)


#: a level within this of the highest throughput counts as reaching it (the medians of
#: three rounds still move by a few percent on a shared machine)
PLATEAU = 0.95


def aims(result: dict[str, Any]) -> dict[str, Any] | None:
    """The aims at the best concurrency: the fewest clients that reach the peak
    throughput (the knee: within ``PLATEAU`` of the highest median). Past it more
    clients add no throughput, only waiting (Little's law), so its p99 is the
    service's; the level with the very highest median is reported beside it."""
    rows = result.get("submission") or []
    if not rows:
        return None
    peak = max(rows, key=lambda r: r["service"]["rps"])
    best = next(r for r in rows if r["service"]["rps"] >= PLATEAU * peak["service"]["rps"])

    def at(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "concurrency": row["concurrency"],
            "rps": row["service"]["rps"],
            "ratio": row["ratio"],
            # each round's ratio at this level: how far the median stands from the aim
            "round_ratios": [r["ratio"] for r in row.get("reps", []) if r["ratio"] is not None],
            "ratio_met": row["ratio"] >= 0.5,
            "p99_ms": row["service"]["p99_ms"],
            "p99_met": row["service"]["p99_ms"] < 50,
        }

    return {"rule": f"fewest clients within {PLATEAU:.0%} of the peak", **at(best),
            "peak": at(peak)}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--levels", default="1,4,8,16,32,64", help="client counts (comma-separated)")
    p.add_argument("--duration", type=float, default=6.0, help="seconds per level and tool")
    p.add_argument(
        "--repeat", type=int, default=3, help="rounds over the levels (medians are reported)"
    )
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--credits", type=int, default=1_000_000, help="granted to each user")
    p.add_argument("--single-user-concurrency", type=int, default=16)
    p.add_argument("--api-procs", type=int, default=int(os.environ.get("BENCH_API_PROCS", "2")))
    p.add_argument("--pool-size", type=int, default=int(os.environ.get("BENCH_POOL_SIZE", "10")))
    p.add_argument("--log-level", default="INFO", help="GENSTUDIO_LOG_LEVEL of the processes")
    p.add_argument(
        "--tool",
        choices=["wrk", "httpx"],
        default="wrk",
        help="the load generator: wrk (installed with apt-get if missing, else the run stops)"
        " or httpx, the Python one (bench/loadgen.py; lower ratios: it shares the CPU)",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="stop if wrk or pgbench is missing instead of installing it with apt-get",
    )
    p.add_argument("--jobs", type=int, default=500, help="jobs through the worker")
    p.add_argument("--worker-concurrency", type=int, default=8)
    p.add_argument("--e2e-timeout", type=float, default=180.0)
    p.add_argument("--skip-submission", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--desc", default="submission-e2e", help="results file name suffix")
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "machine": machine(),
        "config": {
            k: v
            for k, v in vars(args).items()
            if k not in ("no_save", "desc", "skip_e2e", "skip_submission", "no_install")
        },
    }
    # the programs the submission phase drives: found, installed now, or the run stops
    # (bench/tools.py); what was used goes into the results
    used: dict[str, bench_tools.Tool] = {}
    if not args.skip_submission:
        install = not args.no_install
        used["load_generator"] = bench_tools.load_generator(args.tool, install=install, log=log)
        used["pgbench"] = bench_tools.pgbench(install=install, log=log)
        for role, tool in used.items():
            log(f"{role.replace('_', ' ')}: {tool.describe()}")
    result["tools"] = {role: tool.record() for role, tool in used.items()}
    workdir = Path(tempfile.mkdtemp(prefix="genstudio-bench-"))
    lab = Lab(workdir)
    if "pgbench" in used:
        lab.pgbench = used["pgbench"].path
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
        if not args.skip_submission:
            submission_phase(lab, args, result)
            result["aims"] = aims(result)
        if not args.skip_e2e:
            e2e_phase(lab, args, result)
    except BaseException:
        log(f"failed; process logs kept in {workdir}")
        lab.close()
        raise
    lab.close()
    shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["python_speed_ms_at_end"] = python_speed_ms()
    print(table(result))
    if not args.no_save:
        out = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d}-{args.desc}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
