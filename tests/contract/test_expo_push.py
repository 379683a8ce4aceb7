"""The Expo adapter against the Expo stand-in: batching, gzip, the access token, and
each error path."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator

import pytest

from genstudio.adapters.expo import EXPO_RATE, ExpoPushClient, TokenBucket
from genstudio.ports.push import (
    DEVICE_NOT_REGISTERED,
    INVALID_CREDENTIALS,
    MESSAGE_TOO_BIG,
    PushMessage,
    PushUnavailable,
)
from tests.standins.expo import ExpoStandIn
from tests.standins.loopback import Fail, RateLimit, Stall


def token(i: int) -> str:
    return f"ExponentPushToken[device-{i:012d}]"


def msg(i: int) -> PushMessage:
    return PushMessage(to=token(i), title="t", body="b" * 50, data={"jobId": str(i)})


@pytest.fixture
def expo() -> Iterator[ExpoStandIn]:
    with ExpoStandIn(access_token="secret") as standin:
        yield standin


def client(expo: ExpoStandIn, **kw: object) -> ExpoPushClient:
    return ExpoPushClient(
        base_url=expo.url,
        access_token="secret",
        backoff=0.01,
        timeout=1.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_messages_go_in_gzip_batches_of_at_most_100_with_the_access_token(
    expo: ExpoStandIn,
) -> None:
    results = await client(expo).send([msg(i) for i in range(250)])
    assert [r.token for r in results] == [token(i) for i in range(250)]
    assert all(r.ok for r in results)
    sends = [r for r in expo.requests if r.path.endswith("/push/send")]
    sizes = sorted(len(json.loads(gzip.decompress(r.body))) for r in sends)
    assert sizes == [50, 100, 100]
    assert all(r.headers["content-encoding"] == "gzip" for r in sends)
    assert all(r.headers["authorization"] == "Bearer secret" for r in sends)
    assert len(expo.messages) == 250


async def test_receipts_are_asked_in_batches_of_at_most_1000(expo: ExpoStandIn) -> None:
    push = client(expo)
    results = await push.send([msg(i) for i in range(1500)])
    expo.unregistered.add(token(7))
    receipts = await push.receipts([r.ticket_id for r in results if r.ticket_id])
    assert sorted(len(ids) for ids in expo.receipts_asked) == [500, 1000]
    bad = [r for r in receipts if not r.ok]
    assert [r.error for r in bad] == [DEVICE_NOT_REGISTERED] and len(receipts) == 1500


async def test_ticket_errors_are_results_not_exceptions(expo: ExpoStandIn) -> None:
    expo.refused = {token(1): DEVICE_NOT_REGISTERED, token(2): MESSAGE_TOO_BIG}
    results = await client(expo).send([msg(0), msg(1), msg(2)])
    assert [r.error for r in results] == [None, DEVICE_NOT_REGISTERED, MESSAGE_TOO_BIG]


async def test_invalid_credentials_is_an_operator_alert(
    expo: ExpoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    expo.refused = {token(1): INVALID_CREDENTIALS}
    [result] = await client(expo).send([msg(1)])
    assert result.error == INVALID_CREDENTIALS
    assert any(
        r.levelname == "ERROR" and "InvalidCredentials" in r.getMessage() for r in caplog.records
    )


async def test_message_rate_exceeded_is_sent_again_after_a_backoff(expo: ExpoStandIn) -> None:
    expo.rate_limited_messages = 2
    results = await client(expo).send([msg(0), msg(1), msg(2)])
    assert all(r.ok for r in results)
    assert len([r for r in expo.requests if r.path.endswith("/send")]) == 2
    assert len(expo.messages) == 3


async def test_429_and_5xx_back_off_and_then_succeed(expo: ExpoStandIn) -> None:
    expo.inject(RateLimit(retry_after=0))
    expo.inject(Fail(503))
    [result] = await client(expo).send([msg(0)])
    assert result.ok and len(expo.requests) == 3


async def test_a_service_that_stays_down_or_stalls_is_unavailable(expo: ExpoStandIn) -> None:
    expo.inject(Fail(500), times=10)
    with pytest.raises(PushUnavailable):
        await client(expo, attempts=3).send([msg(0)])
    expo.reset()
    expo.inject(Stall(3.0), times=3)
    with pytest.raises(PushUnavailable):
        await client(expo, attempts=2).send([msg(0)])
    assert expo.messages == []


async def test_a_wrong_access_token_is_refused_without_retrying(expo: ExpoStandIn) -> None:
    wrong = ExpoPushClient(base_url=expo.url, access_token="nope", backoff=0.01)
    with pytest.raises(PushUnavailable, match="401"):
        await wrong.send([msg(0)])
    assert len(expo.requests) == 1


async def test_the_token_bucket_keeps_the_average_rate_and_lets_a_burst_through() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=600, burst=600, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):  # a second's worth at once: no wait
        await bucket.take(100)
    assert slept == []
    for _ in range(12):  # 1,200 more: two more seconds
        await bucket.take(100)
    assert now[0] == pytest.approx(2.0)


async def test_the_client_sends_at_most_expos_600_messages_a_second_by_default(
    expo: ExpoStandIn,
) -> None:
    bucket = client(expo)._bucket
    assert bucket is not None and bucket.rate == EXPO_RATE
    # a client limited to 1,000/s (a second's worth at once) sends 1,500 in >= 0.5 s
    limited = client(expo, rate=1000.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await limited.send([msg(i) for i in range(1500)])
    assert all(r.ok for r in results) and len(expo.messages) == 1500
    assert loop.time() - started >= 0.45
