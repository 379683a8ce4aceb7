"""Push tokens, preferences and the inbox over HTTP, on Postgres."""

from __future__ import annotations

import uuid

from tests.integration.test_http_api import PROBLEM, Harness, api

__all__ = ["api"]  # the fixture, used by name

TOKEN = "ExponentPushToken[abcdefghijklmnopqrstuv]"


async def test_a_device_registers_its_token_and_only_its_owner_can_forget_it(api: Harness) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    body = {"token": TOKEN, "platform": "ios", "deviceId": "phone-1", "appVersion": "1.2.0"}
    r = await api.client.post("/v1/push-tokens", json=body, headers=api.headers(me))
    assert r.status_code == 201, r.text
    assert r.json()["active"] is True and r.json()["deviceId"] == "phone-1"
    bad = await api.client.post(
        "/v1/push-tokens", json={**body, "token": "nope"}, headers=api.headers(me)
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["field"] == "token"
    unknown = await api.client.post(
        "/v1/push-tokens", json={**body, "extra": 1}, headers=api.headers(me)
    )
    assert unknown.status_code in (400, 422)
    r = await api.client.delete(f"/v1/push-tokens/{TOKEN}", headers=api.headers(other))
    assert r.status_code == 404
    r = await api.client.delete(f"/v1/push-tokens/{TOKEN}", headers=api.headers(me))
    assert r.status_code == 204


async def test_preferences_default_and_patch(api: Harness) -> None:
    me = uuid.uuid4()
    r = await api.client.get("/v1/me/notification-preferences", headers=api.headers(me))
    assert r.status_code == 200, r.text
    prefs = r.json()
    assert prefs["channels"]["marketing"] == {"push": False, "in_app": False}
    assert prefs["channels"]["generation"] == {"push": True, "in_app": True}
    patch = {
        "channels": {"generation": {"push": False}},
        "quietHours": {"start": "22:00:00", "end": "07:00:00"},
        "timeZone": "Europe/Berlin",
        "language": "de",
    }
    r = await api.client.patch(
        "/v1/me/notification-preferences", json=patch, headers=api.headers(me)
    )
    assert r.status_code == 200, r.text
    assert r.json()["channels"]["generation"] == {"push": False, "in_app": True}
    assert r.json()["quietHours"] == {"start": "22:00:00", "end": "07:00:00"}
    r = await api.client.patch(
        "/v1/me/notification-preferences", json={"timeZone": "Nowhere/x"}, headers=api.headers(me)
    )
    assert r.status_code == 422 and r.json()["field"] == "timeZone"
    r = await api.client.get("/v1/me/notification-preferences", headers=api.headers(me))
    assert r.json()["language"] == "de"


async def test_an_empty_inbox_marks_nothing_and_bad_input_names_its_field(api: Harness) -> None:
    me = uuid.uuid4()
    await api.client.patch(
        "/v1/me/notification-preferences", json={"language": "de"}, headers=api.headers(me)
    )
    await api.grant(me, 25)  # an operator's grant: not told (no event for it)
    r = await api.client.get("/v1/notifications", headers=api.headers(me))
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["unread"] == 0
    r = await api.client.post("/v1/notifications/read", json={"all": True}, headers=api.headers(me))
    assert r.status_code == 200 and r.json() == {"marked": 0, "unread": 0}
    r = await api.client.post("/v1/notifications/read", json={}, headers=api.headers(me))
    assert r.status_code == 422 and r.json()["field"] == "ids"
    r = await api.client.get("/v1/notifications?cursor=%%%", headers=api.headers(me))
    assert r.status_code == 422 and r.json()["field"] == "cursor"
