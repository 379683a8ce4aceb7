"""A push is not lost, nor sent twice, when its sender dies (issue #18).

The API, a Taskiq worker and the scheduler run as processes on real Postgres and
Redis, with Expo's stand-in on loopback. The worker that finishes the job commits the
success with its notification and push outbox row, and its after-commit kick starts
sending; the stand-in holds that request unanswered (nothing accepted) while the
worker is SIGKILLed. Another worker's reconciler pass takes the delivery over once
the dead sender's lease runs out."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import Service
from tests.fault.conftest import Journey, RedisServer, fault_env
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.standins.expo import ExpoStandIn, Hang

pytestmark = pytest.mark.e2e

TOKEN = "ExponentPushToken[fault-device-0000001]"


@pytest.fixture
def expo() -> Iterator[ExpoStandIn]:
    with ExpoStandIn() as standin:
        yield standin


def wait_for(what: str, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def deliveries(pg_url: str, job_id: str) -> list[tuple[str, int]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT d.status, d.attempts FROM notification_deliveries d"
            " JOIN notifications n ON n.id = d.notification_id"
            " WHERE n.data->>'jobId' = %s",
            (job_id,),
        ).fetchall()
    return [(str(status), int(attempts)) for status, attempts in rows]


def test_killing_the_worker_after_commit_and_before_delivery_still_delivers_once(
    fresh_db: str, redis_server: RedisServer, expo: ExpoStandIn, tmp_path: Path
) -> None:
    env = fault_env(
        fresh_db,
        redis_server.url,
        tmp_path / "data",
        EXPO_PUSH_ENABLED="1",
        EXPO_BASE_URL=expo.url,
        GENSTUDIO_NOTIFY_PUSH_LEASE="2",
    )
    svc = Service(env, tmp_path)
    try:
        svc.start("api", "serve")
        svc.start("scheduler", "scheduler")
        svc.start("worker-a", "worker")
        svc.wait_ready()
        journey = Journey(svc)
        r = journey.client.post(
            "/v1/push-tokens", json={"token": TOKEN, "platform": "ios", "deviceId": "phone"}
        )
        assert r.status_code == 201, r.text
        svc.cli("credits", "grant", str(journey.user), "10")
        expo.inject(Hang(120), when=lambda req: req.path.endswith("/push/send"))
        [job_id] = journey.submit(1)

        # the worker's kick is sending: the success (and its outbox row) committed
        wait_for(
            "the first send", lambda: any(q.path.endswith("/push/send") for q in expo.requests)
        )
        svc.stop("worker-a", signal.SIGKILL)
        assert journey.client.get(f"/v1/generate/{job_id}").json()["status"] == "succeeded"
        assert expo.messages == [], "the hung request accepted nothing"
        assert deliveries(fresh_db, job_id) == [("pending", 0)]  # claimed, never recorded

        svc.start("worker-b", "worker")
        wait_for("the push", lambda: len(expo.to(TOKEN)) >= 1)
        wait_for("the delivery recorded", lambda: deliveries(fresh_db, job_id) == [("sent", 0)])
        time.sleep(3)  # a few more reconciler passes: none sends it again
        pushed = expo.to(TOKEN)
        assert len(pushed) == 1, pushed
        assert pushed[0]["data"]["jobId"] == job_id

        inbox = journey.client.get("/v1/notifications").json()
        assert [(n["kind"], n["data"]["jobId"]) for n in inbox["items"]] == [
            ("job_succeeded", job_id)
        ]
        assert inbox["unread"] == 1
        assert_ledger_invariants(fresh_db, users=[journey.user])
    finally:
        svc.stop_all()
