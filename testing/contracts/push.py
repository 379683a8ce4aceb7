"""The ``PushSender`` contract (``genstudio.ports.push``), for any push service's adapter.

Subclass ``PushSenderContract`` and override two fixtures: ``push_factory`` (a function
making the sender, pointed at your stand-in) and ``push_outage`` (a function that makes
the service fail from then on, as your stand-in's failure knob does: every request
answered 5xx, or nothing listening)::

    class TestMyPush(PushSenderContract):
        @pytest.fixture
        def push_factory(self, my_standin):
            return lambda: MyPushSender(base_url=my_standin.url, backoff=0.01)

        @pytest.fixture
        def push_outage(self, my_standin):
            return lambda: my_standin.inject(Fail(503), times=1000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from genstudio.ports.push import PushMessage, PushSender, PushUnavailable


def device_token(i: int) -> str:
    """An Expo-shaped device token (what the app registers)."""
    return f"ExponentPushToken[device-{i:012d}]"


def message(i: int) -> PushMessage:
    return PushMessage(
        to=device_token(i),
        title="Your image is ready",
        body="a red fox in the snow",
        data={"jobId": str(i), "kind": "job_succeeded"},
        badge=1,
        channel_id="jobs",
    )


@pytest.mark.asyncio
class PushSenderContract:
    """What genstudio's push delivery relies on from every push sender."""

    @pytest.fixture
    def push_factory(self) -> Callable[[], PushSender]:
        """Override: a function making the sender under test."""
        pytest.fail(f"{type(self).__name__} must override the push_factory fixture")

    @pytest.fixture
    def push_outage(self) -> Callable[[], None]:
        """Override: a function after which the service answers nothing useful."""
        pytest.fail(f"{type(self).__name__} must override the push_outage fixture")

    @pytest_asyncio.fixture
    async def push(self, push_factory: Callable[[], PushSender]) -> AsyncIterator[PushSender]:
        sender = push_factory()
        yield sender
        close = getattr(sender, "aclose", None)
        if close is not None:
            await close()

    async def test_each_message_gets_one_result_in_order_with_a_ticket_of_its_own(
        self, push: PushSender
    ) -> None:
        messages = [message(i) for i in range(250)]  # more than one batch of any service

        results = await push.send(messages)

        assert [r.token for r in results] == [m.to for m in messages]
        assert all(r.ok and r.error is None for r in results)
        tickets = [r.ticket_id for r in results]
        assert len(set(tickets)) == len(tickets)

    async def test_sending_nothing_asks_nothing(self, push: PushSender) -> None:
        assert await push.send([]) == []
        assert await push.receipts([]) == []

    async def test_receipts_answer_for_the_tickets_asked_and_say_delivered(
        self, push: PushSender
    ) -> None:
        results = await push.send([message(i) for i in range(5)])
        tickets = [r.ticket_id for r in results if r.ticket_id is not None]

        receipts = await push.receipts(tickets)

        answered = [r.ticket_id for r in receipts]
        assert len(set(answered)) == len(answered), "one receipt a ticket"
        assert set(answered) <= set(tickets), "a receipt only for a ticket asked about"
        assert all(r.ok and r.error is None for r in receipts)

    async def test_receipts_of_tickets_it_never_gave_are_left_out(self, push: PushSender) -> None:
        assert await push.receipts(["no-such-ticket-1", "no-such-ticket-2"]) == []

    async def test_a_service_that_fails_is_push_unavailable(
        self, push: PushSender, push_outage: Callable[[], None]
    ) -> None:
        results = await push.send([message(1)])
        push_outage()

        with pytest.raises(PushUnavailable):
            await push.send([message(2)])
        with pytest.raises(PushUnavailable):
            await push.receipts([r.ticket_id for r in results if r.ticket_id is not None])
