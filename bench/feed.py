"""The feed benchmark: ``make bench-feed`` (``python -m bench.feed``; issue #17).

1. Fill: a fresh database (migrated) with 100,000 users (~5% private), 1,000,000
   posts (80% images, 20% videos; 90% public, 10% unlisted; 97% visible, 2% hidden,
   1% removed; created over 90 days, denser lately), ~5M likes drawn Zipf-like (a few
   posts with tens of thousands, most with a handful or none) and ~25,000 blocks, all
   in SQL with ``generate_series``. As a bulk load does it: triggers and foreign-key
   checks off (``session_replication_role = replica``), the plain indexes dropped
   and rebuilt after, and the counters (``like_count``, ``score``) written with the
   posts from the likes' counts instead of by the triggers; then VACUUM ANALYZE.
2. Plans: ``EXPLAIN (ANALYZE, BUFFERS)`` of ``FEED_SQL`` (the adapter's own text) for
   a viewer with blocks both ways: first and deep page, ``new`` and ``top`` (and a
   ``kind`` first page), as a custom and as a generic prepared plan. A Seq Scan on
   ``posts`` or ``likes`` stops the run.
3. Load: ``genstudio serve`` processes under wrk (bench/feed.lua: random viewers'
   tokens, half first pages, half cursor pages, ``new`` twice as often as ``top``),
   then pgbench ``-M prepared`` on the same SQL and the same samples, level by
   level, in rounds; the aims at the knee (≥ 40% of pgbench, p99 < 20 ms).

It reuses bench/run.py's lab, processes, token minting, CPU accounting and
percentiles. Results: ``bench/results/<date>-feed.json``; a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench import tools as bench_tools
from bench.run import (
    BENCH,
    PG_SERVER,
    PLATEAU,
    ROOT,
    Lab,
    _median_row,
    _row,
    cpu_ms_per,
    cpu_now,
    free_port,
    loadavg,
    log,
    machine,
    merged_load,
    mint_tokens,
    postgres_pids,
    python_speed_ms,
    quantiles,
    service_env,
    start_api,
    user_id,
    wait_ready,
    wait_reaped,
)

# FEED_SQL: the adapter's own text; _LATEST/_HIGHEST and _LAST_ID: the key it compares
# with on a first page (no cursor)
from genstudio.adapters.supabase.repositories.social import _HIGHEST, _LAST_ID, _LATEST, FEED_SQL
from genstudio.core.model.social import TOP_WINDOW, FeedSort
from genstudio.entrypoints.http.social.schemas import encode_cursor

PAGE = 20  # the API's page; it asks the database for one more row to know if more follow
LISTED = "visibility = 'public' AND state = 'visible'"
#: the plans' viewer: blocks the 20 most prolific authors and is blocked by 10 users
VIEWER = 1
AIM_RATIO, AIM_P99_MS = 0.40, 20.0
WRK = ["wrk"]  # the one bench.tools found or installed
SHIMMED: list[bool] = []  # whether the API processes needed _SERVE_SHIM


def post_id(n: int) -> uuid.UUID:
    """The bench posts' ids (``bench_pid`` in SQL), as ``user_id`` is the users'."""
    return uuid.UUID(f"00000000-0000-4000-9000-{n:012d}")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- the fill ------------------------------------------------------------------------------

# A rank k (0 = most) maps to a user or post number through k * prime mod N, so the
# prolific authors and the popular posts are spread over the numbers (and the dates).
_FILL = [
    (
        "helpers",
        """
        CREATE FUNCTION bench_uid(n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE AS
        $$ SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
        CREATE FUNCTION bench_pid(n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE AS
        $$ SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid $$;
        CREATE FUNCTION bench_rank(k bigint, n bigint) RETURNS bigint LANGUAGE sql
        IMMUTABLE AS $$ SELECT (k * 7919 + 13) % n + 1 $$;
        """,
    ),
    (
        "users",
        """
        INSERT INTO auth.users (id, email)
        SELECT bench_uid(n), 'user' || n || '@bench.example' FROM generate_series(1, {users}) n;
        INSERT INTO profiles (id, email, username, display_name, is_private, created_at)
        SELECT bench_uid(n), 'user' || n || '@bench.example', 'user' || n, 'User ' || n,
               n <> {viewer} AND random() < 0.05, now() - interval '120 days'
        FROM generate_series(1, {users}) n;
        """,
    ),
    (
        # Zipf-like: post rank floor(N * u^3) gives the top post ~1% of all draws
        # (capped by the number of users), a post in the middle a few, many none
        "like pairs",
        """
        CREATE UNLOGGED TABLE bench_like_pairs AS
        SELECT DISTINCT bench_rank(floor({posts} * power(random(), 3))::bigint, {posts}) AS post_n,
               1 + floor({users} * random())::bigint AS user_n
        FROM generate_series(1, {likes});
        CREATE UNLOGGED TABLE bench_like_counts AS
        SELECT post_n, count(*)::int AS likes FROM bench_like_pairs GROUP BY post_n;
        """,
    ),
    (
        "posts",
        """
        INSERT INTO posts (id, user_id, asset_id, media_kind, storage_key, poster_key,
            content_type, width, height, duration_seconds, caption, visibility, state,
            share_id, like_count, score, created_at, updated_at)
        SELECT bench_pid(t.n), bench_uid(t.author), gen_random_uuid(), t.kind,
               'bench/' || t.n || CASE t.kind WHEN 'video' THEN '.mp4' ELSE '.png' END,
               CASE t.kind WHEN 'video' THEN 'bench/' || t.n || '.jpg' END,
               CASE t.kind WHEN 'video' THEN 'video/mp4' ELSE 'image/png' END,
               1024, CASE t.kind WHEN 'video' THEN 576 ELSE 1024 END,
               CASE t.kind WHEN 'video' THEN 5.0 END,
               'a bench post, number ' || t.n,
               CASE WHEN t.r1 < 0.9 THEN 'public' ELSE 'unlisted' END,
               CASE WHEN t.r2 < 0.97 THEN 'visible' WHEN t.r2 < 0.99 THEN 'hidden'
                    ELSE 'removed' END,
               'b' || t.n, coalesce(c.likes, 0), genstudio_hot(coalesce(c.likes, 0), t.at),
               t.at, t.at
        FROM (SELECT n, bench_rank(floor({users} * power(random(), 2))::bigint, {users})
                        AS author,
                     CASE WHEN random() < 0.8 THEN 'image' ELSE 'video' END AS kind,
                     random() AS r1, random() AS r2,
                     now() - make_interval(secs => 90 * 86400 * power(random(), 1.3)) AS at
              FROM generate_series(1, {posts}) n) t
        LEFT JOIN bench_like_counts c ON c.post_n = t.n;
        """,
    ),
    (
        "likes",
        """
        INSERT INTO likes (post_id, user_id, created_at)
        SELECT bench_pid(l.post_n), bench_uid(l.user_n),
               p.created_at + (now() - p.created_at) * power(random(), 2)
        FROM bench_like_pairs l JOIN posts p ON p.id = bench_pid(l.post_n)
        ORDER BY l.post_n, l.user_n;
        DROP TABLE bench_like_pairs, bench_like_counts;
        """,
    ),
    (
        # 5,000 users block 1-10 others (the prolific more often); the plans' viewer
        # blocks the 20 most prolific authors and 10 users block it
        "blocks",
        """
        INSERT INTO blocks (blocker_id, blocked_id, created_at)
        SELECT DISTINCT bench_uid(a), bench_uid(b), now() - interval '1 day'
        FROM (SELECT (floor(5000 * random())::bigint * 104729 + 7) % {users} + 1 AS a,
                     bench_rank(floor({users} * power(random(), 2))::bigint, {users}) AS b
              FROM generate_series(1, 27500)) s
        WHERE a <> b;
        INSERT INTO blocks (blocker_id, blocked_id, created_at)
        SELECT bench_uid({viewer}), bench_uid(bench_rank(k, {users})), now()
        FROM generate_series(0, 19) k WHERE bench_rank(k, {users}) <> {viewer}
        ON CONFLICT DO NOTHING;
        INSERT INTO blocks (blocker_id, blocked_id, created_at)
        SELECT bench_uid(50000 + k), bench_uid({viewer}), now() FROM generate_series(1, 10) k
        ON CONFLICT DO NOTHING;
        """,
    ),
]


def fill(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load the data as a bulk load would (see the module's docstring); return the
    counts, the sizes and each step's seconds."""
    values = {"users": args.users, "posts": args.posts, "likes": args.likes, "viewer": VIEWER}
    steps: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # superuser: no triggers, FKs
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SELECT setseed(0.2026)")
        rebuilt = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid IN ('posts'::regclass, 'likes'::regclass) AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ).fetchall()
        for name, _ in rebuilt:
            conn.execute(f"DROP INDEX {name}")
        for step, sql in _FILL:
            started = time.monotonic()
            conn.execute(sql.format(**values).encode())
            steps[step] = round(time.monotonic() - started, 1)
            log(f"fill: {step} in {steps[step]} s")
        started = time.monotonic()
        for _, definition in rebuilt:
            conn.execute(definition.encode())
        steps["indexes"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        conn.execute("VACUUM (ANALYZE) profiles, posts, likes, blocks, auth.users")
        steps["vacuum analyze"] = round(time.monotonic() - started, 1)
        log(f"fill: {len(rebuilt)} indexes rebuilt, vacuumed and analysed")
        facts = conn.execute(
            f"""SELECT (SELECT count(*) FROM profiles), (SELECT count(*) FROM profiles
                WHERE is_private), (SELECT count(*) FROM posts), (SELECT count(*) FROM posts
                WHERE {LISTED}), (SELECT count(*) FROM posts WHERE media_kind = 'video'),
                (SELECT count(*) FROM likes), (SELECT sum(like_count) FROM posts),
                (SELECT max(like_count) FROM posts), (SELECT percentile_disc(0.5) WITHIN
                GROUP (ORDER BY like_count) FROM posts), (SELECT count(*) FROM posts WHERE
                like_count = 0), (SELECT count(*) FROM blocks), (SELECT count(*) FROM posts
                WHERE {LISTED} AND created_at > now() - interval '7 days'),
                pg_size_pretty(pg_total_relation_size('posts')),
                pg_size_pretty(pg_total_relation_size('likes')),
                pg_size_pretty(pg_database_size(current_database()))"""
        ).fetchone()
        assert facts is not None
    keys = [
        "profiles",
        "private",
        "posts",
        "listed",
        "videos",
        "likes",
        "like_count_sum",
        "max_likes",
        "median_likes",
        "posts_without_likes",
        "blocks",
        "listed_last_7_days",
        "posts_size",
        "likes_size",
        "database_size",
    ]
    counts = dict(zip(keys, facts, strict=True))
    # the counters were written from the likes, not by the triggers: check they agree
    if counts["likes"] != counts["like_count_sum"]:
        raise SystemExit(f"fill: like counters disagree with the likes: {counts}")
    return {"seconds": steps, "counts": counts}


# --- the SQL, as the adapter and as pgbench send it ---------------------------------------

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def positional(sql: str) -> tuple[str, list[str]]:
    """``FEED_SQL``'s ``:name`` placeholders as ``$n`` (one per name), for PREPARE."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return _PARAM.sub(number, sql), names


def pgbench_sql(sort: FeedSort) -> str:
    """The feed statement as pgbench runs it: the viewer and the cursor of sample
    ``:n`` found again with a subquery (pgbench cannot hold a uuid or a timestamp in
    a variable): a little more work for pgbench, never less; ``:since`` and
    ``:limit`` are -D values."""
    table = f"bench_load_{sort.value}"
    found = {name: f"(SELECT {name} FROM {table} WHERE n = :n)" for name in ("viewer", "key", "id")}
    return _PARAM.sub(lambda m: found.get(m.group(1), m.group(0)), FEED_SQL[sort, False])


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime | uuid.UUID):
        return f"'{value.isoformat() if isinstance(value, datetime) else value}'"
    return repr(value)


# --- the plans --------------------------------------------------------------------------


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _walk(child))]


def explain(
    conn: psycopg.Connection[tuple[Any, ...]], name: str, sql: str, values: dict[str, Any]
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of ``sql`` prepared, as a custom and a generic plan."""
    text_sql, names = positional(sql)
    conn.execute(f"DEALLOCATE ALL; PREPARE bench_feed AS {text_sql}")
    execute = f"EXECUTE bench_feed({', '.join(_literal(values[n]) for n in names)})"
    out: dict[str, Any] = {"case": name, "values": {k: str(v) for k, v in values.items()}}
    for mode in ("custom", "generic"):
        conn.execute(f"SET plan_cache_mode = force_{mode}_plan")
        conn.execute(execute)  # warm the cache: the load runs on warm buffers too
        doc = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}").fetchone()
        lines = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {execute}").fetchall()
        assert doc is not None
        plan = doc[0][0]
        nodes = _walk(plan["Plan"])
        out[mode] = {
            "execution_ms": plan["Execution Time"],
            "planning_ms": plan["Planning Time"],
            "rows": plan["Plan"]["Actual Rows"],
            "shared_hit": plan["Plan"].get("Shared Hit Blocks", 0),
            "shared_read": plan["Plan"].get("Shared Read Blocks", 0),
            "scans": sorted(
                {
                    f"{n['Node Type']} {n.get('Index Name') or n['Relation Name']}"
                    for n in nodes
                    if "Relation Name" in n
                }
            ),
            "seq_scans": sorted(
                {n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}
            ),
            "text": [row[0] for row in lines],
        }
    conn.execute("RESET plan_cache_mode; DEALLOCATE ALL")
    return out


def plans(url: str, now: datetime, deep_rank: int) -> list[dict[str, Any]]:
    """The feed's plans for the viewer with blocks, first page and the page after the
    ``deep_rank``-th post; stops the run on a Seq Scan on posts or likes."""
    viewer = user_id(VIEWER)
    since = now - TOP_WINDOW
    with psycopg.connect(url, autocommit=True) as conn:
        deep: dict[FeedSort, tuple[Any, uuid.UUID]] = {}
        for sort, key, window in (
            (FeedSort.NEW, "created_at", ""),
            (FeedSort.TOP, "score", " AND created_at > %(since)s"),
        ):
            row = conn.execute(
                f"SELECT {key}, id FROM posts WHERE {LISTED}{window}"
                f" ORDER BY {key} DESC, id DESC OFFSET {deep_rank} LIMIT 1",
                {"since": since},
            ).fetchone()
            assert row is not None, "too few posts for a deep page"
            deep[sort] = (row[0], row[1])
        first = {FeedSort.NEW: (_LATEST, _LAST_ID), FeedSort.TOP: (_HIGHEST, _LAST_ID)}
        cases = []
        for sort in FeedSort:
            for page, (at, last) in (
                ("first", first[sort]),
                (f"deep (rank {deep_rank:,})", deep[sort]),
            ):
                values: dict[str, Any] = {"viewer": viewer, "key": at, "id": last}
                values |= {"limit": PAGE + 1, "since": since}
                cases.append(
                    explain(conn, f"{sort.value}, {page} page", FEED_SQL[sort, False], values)
                )
            kinded = {"viewer": viewer, "key": first[sort][0], "id": _LAST_ID, "kind": "video"}
            kinded |= {"limit": PAGE + 1, "since": since}
            cases.append(
                explain(conn, f"{sort.value}, first page, kind=video", FEED_SQL[sort, True], kinded)
            )
            pgb = {"n": 1, "limit": PAGE + 1, "since": since}
            cases.append(explain(conn, f"{sort.value}, pgbench's form", pgbench_sql(sort), pgb))
    bad = [
        (c["case"], mode, c[mode]["seq_scans"])
        for c in cases
        for mode in ("custom", "generic")
        if {"posts", "likes"} & set(c[mode]["seq_scans"])
    ]
    for c in cases:
        log(
            f"plan {c['case']}: custom {c['custom']['execution_ms']:.2f} ms"
            f" ({c['custom']['shared_hit']} hits), generic {c['generic']['execution_ms']:.2f} ms;"
            f" {', '.join(c['custom']['scans'])}"
        )
    if bad:
        for c in cases:
            print("\n".join([c["case"], *c["custom"]["text"], *c["generic"]["text"]]))
        raise SystemExit(f"FAILED: a sequential scan of posts or likes in the feed's plans: {bad}")
    return cases


# --- the load's samples: the same for wrk and for pgbench ----------------------------------


def samples(url: str, args: argparse.Namespace, workdir: Path, now: datetime) -> dict[str, Any]:
    """``args.samples`` requests per sort (``top`` half as many): a random viewer (half
    of them users with blocks) and a page: half first pages, 35% within the first 100
    pages, 15% anywhere. Written as bench_load_<sort> for pgbench and as a file of
    token/path lines for wrk."""
    rng = random.Random(2026)
    since = now - TOP_WINDOW
    with psycopg.connect(url, autocommit=True) as conn:
        blockers = [r[0] for r in conn.execute("SELECT DISTINCT blocker_id FROM blocks")]
        numbers = {int(str(u)[-12:]) for u in rng.sample(blockers, min(500, len(blockers)))}
        while len(numbers) < min(args.viewers, args.users):
            numbers.add(rng.randint(1, args.users))
        viewers = sorted(numbers)
        tokens = dict(zip(viewers, mint_tokens(viewers), strict=True))
        lines, counts = [], {}
        for sort, key, window, share in (
            (FeedSort.NEW, "created_at", "", 1.0),
            (FeedSort.TOP, "score", " AND created_at > %(since)s", 0.5),
        ):
            n = int(args.samples * share)
            top = conn.execute(
                f"SELECT {key}, id FROM posts WHERE {LISTED}{window}"
                f" ORDER BY {key} DESC, id DESC LIMIT {100 * PAGE}",
                {"since": since},
            ).fetchall()
            picks = [post_id(rng.randint(1, args.posts)) for _ in range(20 * n)]
            anywhere = conn.execute(
                f"SELECT {key}, id FROM posts WHERE id = ANY(%(ids)s) AND {LISTED}{window}",
                {"ids": picks, "since": since},
            ).fetchall()
            first = (_LATEST if sort is FeedSort.NEW else _HIGHEST, _LAST_ID)
            rows = []
            for i in range(1, n + 1):
                r = rng.random()
                page = (
                    first if r < 0.5 else rng.choice(top if r < 0.85 or not anywhere else anywhere)
                )
                rows.append((i, user_id(rng.choice(viewers)), page[0], page[1]))
            kind = "timestamptz" if sort is FeedSort.NEW else "double precision"
            table = f"bench_load_{sort.value}"
            conn.execute(
                f"CREATE TABLE {table} (n int PRIMARY KEY, viewer uuid NOT NULL,"
                f" key {kind} NOT NULL, id uuid NOT NULL)"
            )
            with conn.cursor().copy(f"COPY {table} (n, viewer, key, id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(f"ANALYZE {table}")
            for _, viewer, k, last in rows:
                cursor = "" if last == _LAST_ID else f"&cursor={encode_cursor((k, last))}"
                lines.append(
                    f"{tokens[int(str(viewer)[-12:])]}\t/v1/feed?sort={sort.value}{cursor}"
                )
            counts[sort.value] = n
    path = workdir / "feed-load.txt"
    path.write_text("\n".join(lines) + "\n")
    return {"path": path, "counts": counts, "viewers": len(viewers), "with_blocks": 500}


# --- load ---------------------------------------------------------------------------------


def wrk(ports: list[int], connections: int, duration: float, load: Path) -> dict[str, Any]:
    """wrk (``WRK``) with bench/feed.lua, the connections split over the API processes."""
    shares = [connections // len(ports) + (i < connections % len(ports)) for i in range(len(ports))]
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{share}",
                f"-d{duration:g}s",
                "--timeout",
                "10s",
                "-s",
                str(BENCH / "feed.lua"),
                f"http://127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "BENCH_FEED_LOAD": str(load)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for port, share in zip(ports, shares, strict=True)
        if share
    ]
    return merged_load(procs, duration, "wrk")


def pgbench(
    lab: Lab, db: str, scripts: dict[str, Path], clients: int, duration: float, now: datetime
) -> dict[str, Any]:
    """pgbench -M prepared on the feed's scripts (``new`` twice as often as ``top``, as
    the wrk samples); tps and per-transaction latencies from its log."""
    logdir = Path(tempfile.mkdtemp(prefix=f"pgbench-feed-{clients}-", dir=lab.workdir))
    server = conninfo_to_dict(PG_SERVER)
    args = [
        lab.pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(int(duration)), "-f", f"{scripts['new']}@2", "-f", f"{scripts['top']}@1",
        "-D", f"limit={PAGE + 1}", "-D", f"since={(now - TOP_WINDOW).isoformat()}",
        "-l", f"--log-prefix={logdir}/tx",
        "-h", str(server.get("host", "127.0.0.1")), "-p", str(server.get("port", 5432)),
        "-U", str(server.get("user", "postgres")), db,
    ]  # fmt: skip
    backends = postgres_pids()
    out = subprocess.run(args, capture_output=True, timeout=duration + 60, cwd=logdir)
    wait_reaped(postgres_pids() - backends)  # their CPU then shows in the postmaster's
    text = out.stdout.decode()
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench failed: {out.stderr.decode()[-2000:]} {text[-1000:]}")
    lat = [
        float(fields[2])
        for path in logdir.iterdir()
        for row in path.read_text().splitlines()
        if len(fields := row.split()) >= 3
    ]
    shutil.rmtree(logdir, ignore_errors=True)
    return {"transactions": len(lat), "tps": round(float(found.group(1)), 1), **quantiles(lat)}


# ``genstudio serve`` as genstudio.entrypoints.cli.main runs it, the port from PORT: the fallback
# for a cli whose ``_serve`` still replaces ``host``/``port`` on the composed Settings
# (7fa4888 moved them to ``settings.server``; the replace then raises TypeError)
_SERVE_SHIM = (
    "import msgspec.structs as s, genstudio.entrypoints.cli as c; r = s.replace;"
    " s.replace = lambda o, **k: o if set(k) <= {'host', 'port'} and not hasattr(o, 'host')"
    " else r(o, **k); c.main(['serve'])"
)


def serve(lab: Lab, env: dict[str, str], count: int) -> list[int]:
    """``genstudio serve`` processes (bench/run.py's start_api), or the same through
    ``_SERVE_SHIM`` where the cli cannot start (said in the log and the results)."""
    try:
        return start_api(lab, env, count)
    except RuntimeError as exc:
        if "has no field 'host'" not in str(exc):
            raise
    log("genstudio serve --port fails (Settings has no field 'host'): started through the shim")
    SHIMMED.append(True)
    for name in list(lab.procs):
        lab.stop(name)
    ports = []
    for i in range(count):
        ports.append(free_port())
        port_env = {**env, "PORT": str(ports[-1])}
        lab.start(f"api{i}", [sys.executable, "-c", _SERVE_SHIM], port_env)
    wait_ready(lab, ports)
    return ports


def load_phase(
    lab: Lab, url: str, args: argparse.Namespace, load: Path, now: datetime
) -> list[dict[str, Any]]:
    """Each level: the service under wrk, then pgbench at once on the same machine;
    in rounds, each level summarised by its medians (as bench/run.py does)."""
    db = str(conninfo_to_dict(url)["dbname"])
    scripts = {}
    for sort in FeedSort:
        rows = int(args.samples * (1.0 if sort is FeedSort.NEW else 0.5))
        scripts[sort.value] = lab.workdir / f"feed-{sort.value}.pgbench"
        scripts[sort.value].write_text(f"\\set n random(1, {rows})\n{pgbench_sql(sort)};\n")
    env = service_env(
        url, lab.workdir, GENSTUDIO_DB_POOL_SIZE=str(args.pool_size), GENSTUDIO_LOG_LEVEL="INFO"
    )
    ports = serve(lab, env, args.api_procs)
    pids = [lab.procs[f"api{i}"].pid for i in range(args.api_procs)]
    log(f"API up on {ports}; warming up")
    wrk(ports, max(args.levels), 3, load)
    pgbench(lab, db, scripts, max(args.levels), 2, now)
    reps: dict[int, list[dict[str, Any]]] = {c: [] for c in args.levels}
    for r in range(args.repeat):
        for c in args.levels:
            cpu = cpu_now(pids)
            svc = wrk(ports, c, args.duration, load)
            used = cpu_ms_per(cpu, cpu_now(pids), svc["requests"])
            svc |= {f"{k}_cpu_ms_per_request": v for k, v in used.items()}
            svc["loadavg"] = loadavg()
            if svc["errors"]:
                raise SystemExit(f"FAILED: {svc['errors']} feed requests were not answered 200")
            cpu = cpu_now(pids)
            pgb = pgbench(lab, db, scripts, c, args.duration, now)
            used = cpu_ms_per(cpu, cpu_now(pids), pgb["transactions"])
            pgb |= {"pg_cpu_ms_per_tx": used["pg"], "machine_cpu_ms_per_tx": used["machine"]}
            pgb["loadavg"] = loadavg()
            reps[c].append(_row(c, args.users, svc, pgb))
            log(
                f"round {r + 1}/{args.repeat} c={c}: service {svc['rps']} req/s,"
                f" p99 {svc['p99_ms']} ms, API CPU {svc['api_cpu_ms_per_request']} ms/req;"
                f" pgbench {pgb['tps']} tps, p99 {pgb['p99_ms']} ms;"
                f" ratio {reps[c][-1]['ratio']}; load {svc['loadavg']}"
            )
    for i in range(args.api_procs):
        lab.stop(f"api{i}")
    return [_median_row(reps[c]) for c in args.levels]


def knee(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The aims at the fewest clients within PLATEAU of the highest median (the knee,
    as bench/run.py takes it); the peak beside it."""
    peak = max(rows, key=lambda r: r["service"]["rps"])
    best = next(r for r in rows if r["service"]["rps"] >= PLATEAU * peak["service"]["rps"])

    def at(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "concurrency": row["concurrency"],
            "rps": row["service"]["rps"],
            "ratio": row["ratio"],
            "round_ratios": [r["ratio"] for r in row["reps"]],
            "ratio_met": row["ratio"] >= AIM_RATIO,
            "p99_ms": row["service"]["p99_ms"],
            "p99_met": row["service"]["p99_ms"] < AIM_P99_MS,
        }

    return {"rule": f"fewest clients within {PLATEAU:.0%} of the peak", **at(best),
            "peak": at(peak)}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [
        "Feed: GET /v1/feed (wrk) vs pgbench running the same SQL, medians of the rounds",
        f"{'conc':>5} | {'svc req/s':>9} {'p50':>6} {'p99':>6} {'api ms':>6} |"
        f" {'pgb tps':>8} {'p50':>6} {'p99':>6} | {'ratio':>6}  rounds",
    ]
    for row in result["levels"]:
        s, p = row["service"], row["pgbench"]
        rounds = " ".join(f"{r['ratio']:.2f}" for r in row["reps"])
        lines.append(
            f"{row['concurrency']:>5} | {s['rps']:>9} {s['p50_ms']:>6} {s['p99_ms']:>6}"
            f" {s['api_cpu_ms_per_request']:>6} | {p['tps']:>8} {p['p50_ms']:>6}"
            f" {p['p99_ms']:>6} | {row['ratio']:>6}  {rounds}"
        )
    k = result["aims"]
    lines.append(
        f"knee: {k['concurrency']} clients, {k['ratio']:.1%} of pgbench"
        f" (aim {AIM_RATIO:.0%}: {'met' if k['ratio_met'] else 'NOT met'}), p99 {k['p99_ms']} ms"
        f" (aim {AIM_P99_MS:g} ms: {'met' if k['p99_met'] else 'NOT met'})"
    )
    for c in result["plans"]:
        lines.append(
            f"plan {c['case']}: {c['custom']['execution_ms']:.2f} ms custom,"
            f" {c['generic']['execution_ms']:.2f} ms generic; {', '.join(c['custom']['scans'])}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.feed", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--posts", type=int, default=1_000_000)
    p.add_argument("--likes", type=int, default=5_000_000, help="draws (duplicates drop out)")
    p.add_argument("--viewers", type=int, default=1000, help="viewers with a token in the load")
    p.add_argument("--samples", type=int, default=2000, help="requests of the new feed sampled")
    p.add_argument("--levels", default="1,4,8,16,32", help="client counts (comma-separated)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per level and tool")
    p.add_argument("--repeat", type=int, default=3, help="rounds over the levels")
    p.add_argument("--api-procs", type=int, default=2)
    p.add_argument("--pool-size", type=int, default=10)
    p.add_argument("--plans-only", action="store_true", help="fill and explain, no load")
    p.add_argument("--keep", action="store_true", help="keep the database (its name is logged)")
    p.add_argument("--no-install", action="store_true", help="stop if wrk or pgbench is missing")
    p.add_argument("--desc", default="feed", help="results file name suffix")
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "uptime_at_start": uptime(),
        "machine": machine(),
        "config": {k: v for k, v in vars(args).items() if k not in ("no_save", "desc")},
    }
    install = not args.no_install
    tools = {
        "load_generator": bench_tools.load_generator("wrk", install=install, log=log),
        "pgbench": bench_tools.pgbench(install=install, log=log),
    }
    result["tools"] = {role: tool.record() for role, tool in tools.items()}
    lab = Lab(Path(tempfile.mkdtemp(prefix="genstudio-bench-feed-")))
    lab.pgbench = tools["pgbench"].path
    WRK[0] = tools["load_generator"].path
    try:
        url = lab.database("feed")
        log(f"filling {conninfo_to_dict(url)['dbname']}")
        result["fill"] = fill(url, args)
        now = datetime.now(UTC)
        load = samples(url, args, lab.workdir, now)
        result["load"] = {k: v for k, v in load.items() if k != "path"}
        result["plans"] = plans(url, now, min(10_000, args.posts // 100))
        if not args.plans_only:
            result["levels"] = load_phase(lab, url, args, load["path"], now)
            result["aims"] = knee(result["levels"])
            result["serve_shim"] = bool(SHIMMED)
        if args.keep:
            log(f"keeping {url}")
            lab.databases.clear()
    except BaseException:
        log(f"failed; process logs kept in {lab.workdir}")
        lab.close()
        raise
    lab.close()
    shutil.rmtree(lab.workdir, ignore_errors=True)
    result["machine"]["python_speed_ms_at_end"] = python_speed_ms()
    result["uptime_at_end"] = uptime()
    if "levels" in result:
        print(table(result))
    if not args.no_save:
        out = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d}-{args.desc}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
