"""The PushSender contract (genstudio.testing.contracts.push, the suite an outside
adapter runs too) over Expo's adapter against the Expo stand-in and over the
recording sender in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from genstudio.adapters.expo import ExpoPushClient
from genstudio.adapters.memory.push import RecordingPushSender
from genstudio.ports.push import PushSender
from genstudio.testing.contracts.push import PushSenderContract
from genstudio.testing.standins.loopback import Fail
from tests.standins.expo import ExpoStandIn


class TestExpoPushClient(PushSenderContract):
    @pytest.fixture
    def expo(self) -> Iterator[ExpoStandIn]:
        with ExpoStandIn(access_token="secret") as standin:
            yield standin

    @pytest.fixture
    def push_factory(self, expo: ExpoStandIn) -> Callable[[], PushSender]:
        return lambda: ExpoPushClient(
            base_url=expo.url, access_token="secret", backoff=0.01, timeout=1.0
        )

    @pytest.fixture
    def push_outage(self, expo: ExpoStandIn) -> Callable[[], None]:
        return lambda: expo.inject(Fail(503), times=1000)


class TestRecordingPushSender(PushSenderContract):
    @pytest.fixture
    def sender(self) -> RecordingPushSender:
        return RecordingPushSender()

    @pytest.fixture
    def push_factory(self, sender: RecordingPushSender) -> Callable[[], PushSender]:
        return lambda: sender

    @pytest.fixture
    def push_outage(self, sender: RecordingPushSender) -> Callable[[], None]:
        def down() -> None:
            sender.down = True

        return down
