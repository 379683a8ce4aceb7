"""``GET /v1/admin/stats`` over HTTP on Postgres (issue #20): operators only, and the
contract scenario's figures as the app renders them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from genstudio.entrypoints.http.admin.stats import BusinessStatsResponse
from tests.contract.test_business_stats import expected, seed
from tests.integration.test_http_api import PROBLEM, Harness, api

pytestmark = pytest.mark.postgres

__all__ = ["api"]  # the fixture, used by name


def _without_times(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    del body["at"]
    body["activity"] = [{k: v for k, v in a.items() if k != "since"} for a in body["activity"]]
    return body


async def test_operators_get_the_business_figures_and_users_do_not(api: Harness) -> None:
    await seed(api.uow_factory)

    response = await api.client.get("/v1/admin/stats", headers=api.service_headers())
    assert response.status_code == 200, response.text
    body = response.json()
    at = datetime.fromisoformat(body["at"])
    assert _without_times(body) == _without_times(
        msgspec.to_builtins(BusinessStatsResponse.of(expected(at)))
    )
    assert body["users"] == {"total": 3, "paying": 2, "subscribers": 1, "conversion": 0.6667}
    assert [a["generationsPerUser"] for a in body["activity"]] == [1.0, 1.5, 2.0]
    for item, days in zip(body["activity"], (1, 7, 30), strict=True):
        assert at - datetime.fromisoformat(item["since"]) == timedelta(days=days)
    assert body["stores"][0] == {
        "store": "apple",
        "window": "day",
        "purchases": 2,
        "subscriptionPayments": 1,
        "creditsSold": 100,
        "refunds": 1,
        "creditsClawedBack": 40,
        "sandboxPurchases": 1,
        "byProduct": {
            "credits_100": {"purchases": 1, "refunds": 0},
            "pro_monthly": {"purchases": 1, "refunds": 1},
        },
        "revenueMicros": {"EUR": 1_000_000, "USD": 9_990_000},
        "refundedMicros": {"USD": 9_990_000},
        "pricedPurchases": 2,
        "unpricedPurchases": 0,
    }

    refused = await api.client.get("/v1/admin/stats", headers=api.headers(uuid.uuid4()))
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    anonymous = await api.client.get("/v1/admin/stats")
    assert anonymous.status_code == 401
