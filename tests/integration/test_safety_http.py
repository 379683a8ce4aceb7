"""Reports, blocks, operators' decisions and account deletion over HTTP on the real
Postgres (issue #17)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.test_http_api import PROBLEM, Harness, api
from tests.integration.test_social_http import feed, publish

pytestmark = pytest.mark.postgres
__all__ = ["api"]  # the fixture, used by name


async def report(
    api: Harness, user: uuid.UUID, kind: str, target: object, **extra: object
) -> httpx.Response:
    body = {"targetType": kind, "targetId": str(target), "reason": "spam", **extra}
    return await api.client.post("/v1/reports", json=body, headers=api.headers(user))


async def test_reports_hide_a_post_and_an_operator_restores_it(api: Harness) -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    post = await publish(api, a)
    first = await report(api, b, "post", post["id"], details="bought likes")
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "open" and first.json()["details"] == "bought likes"
    again = await report(api, b, "post", post["id"])
    assert again.status_code == 409 and again.json()["code"] == "already_reported"
    assert again.json()["field"] == "targetId" and again.headers["content-type"] == PROBLEM
    bad = await api.client.post(
        "/v1/reports",
        json={"targetType": "post", "targetId": post["id"], "reason": "meh"},
        headers=api.headers(c),
    )
    assert bad.status_code == 422 and bad.json()["field"] == "reason"
    unknown = await report(api, c, "post", uuid.uuid4())
    assert unknown.status_code == 404 and unknown.json()["field"] == "targetId"
    extra = await api.client.post(
        "/v1/reports",
        json={"targetType": "user", "targetId": str(a), "reason": "spam", "why": 1},
        headers=api.headers(c),
    )
    assert extra.status_code in (400, 422)
    for who in (c, d):
        assert (await report(api, who, "post", post["id"])).status_code == 201
    hidden = await api.client.get(f"/v1/posts/{post['id']}", headers=api.headers(b))
    assert hidden.status_code == 404
    assert post["id"] not in [p["id"] for p in await feed(api, b)]
    mine = await api.client.get("/v1/reports", headers=api.headers(b))
    assert [r["targetId"] for r in mine.json()["items"]] == [post["id"]]

    # operators only
    refused = await api.client.get("/v1/admin/reports?status=open", headers=api.headers(a))
    assert refused.status_code == 403
    ops = api.service_headers()
    listed, cursor = [], None
    while True:
        page = await api.client.get(
            "/v1/admin/reports",
            params={"status": "open", **({"cursor": cursor} if cursor else {})},
            headers=ops,
        )
        assert page.status_code == 200, page.text
        listed += page.json()["items"]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    ours = [r for r in listed if r["targetId"] == post["id"]]
    assert {r["reporterId"] for r in ours} == {str(b), str(c), str(d)}
    resolved = await api.client.post(
        f"/v1/admin/reports/{ours[0]['id']}/resolve",
        json={"action": "dismiss", "note": "a joke"},
        headers=ops,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "dismissed" and resolved.json()["action"] == "dismiss"
    assert (
        await api.client.get(f"/v1/posts/{post['id']}", headers=api.headers(b))
    ).status_code == 200
    closed = await api.client.post(
        f"/v1/admin/reports/{ours[1]['id']}/resolve", json={"action": "restore"}, headers=ops
    )
    assert closed.status_code == 409 and closed.json()["code"] == "report_closed"
    bad_action = await api.client.post(
        f"/v1/admin/reports/{uuid.uuid4()}/resolve", json={"action": "ban"}, headers=ops
    )
    assert bad_action.status_code == 422 and bad_action.json()["field"] == "action"
    log = await api.client.get(
        "/v1/admin/audit-log", params={"targetId": str(post["id"])}, headers=ops
    )
    assert [(e["action"], e["note"]) for e in log.json()["items"]] == [
        ("dismiss", "a joke"),
        ("hidden_by_reports", "3 distinct reporters"),
    ]


async def test_a_suspended_account_reads_but_cannot_publish_comment_or_like(
    api: Harness,
) -> None:
    troll, other = uuid.uuid4(), uuid.uuid4()
    theirs = await publish(api, troll)
    mine = await publish(api, other)
    reported = await report(api, other, "user", troll)
    assert reported.status_code == 201, reported.text
    ops = api.service_headers()
    resolved = await api.client.post(
        f"/v1/admin/reports/{reported.json()['id']}/resolve",
        json={"action": "suspend_user"},
        headers=ops,
    )
    assert resolved.status_code == 200, resolved.text
    assert theirs["id"] not in [p["id"] for p in await feed(api, other)]  # hidden
    assert mine["id"] in [p["id"] for p in await feed(api, troll)]  # reading goes on
    h = api.headers(troll)
    asset = (await api.client.get("/v1/me/content", headers=h)).json()["items"][0]
    refusals = [
        await api.client.post(
            "/v1/posts",
            json={"assetId": asset["id"], "caption": "again", "visibility": "public"},
            headers=h,
        ),
        await api.client.post(
            f"/v1/posts/{mine['id']}/comments", json={"body": "hello"}, headers=h
        ),
        await api.client.put(f"/v1/posts/{mine['id']}/like", headers=h),
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "account_suspended"
        assert refused.headers["content-type"] == PROBLEM
    post = (await api.client.get(f"/v1/posts/{mine['id']}", headers=api.headers(other))).json()
    assert (post["likeCount"], post["commentCount"]) == (0, 0)  # nothing written


async def test_blocking_hides_the_blocked_users_comments_and_refuses_their_likes(
    api: Harness,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    h = api.headers
    post = await publish(api, a)
    said = await api.client.post(
        f"/v1/posts/{post['id']}/comments", json={"body": "first"}, headers=h(b)
    )
    assert said.status_code == 201
    comments = f"/v1/posts/{post['id']}/comments"
    assert len((await api.client.get(comments, headers=h(a))).json()["items"]) == 1
    for _ in range(2):  # idempotent
        assert (await api.client.put(f"/v1/blocks/{b}", headers=h(a))).status_code == 204
    blocks = (await api.client.get("/v1/blocks", headers=h(a))).json()["items"]
    assert [x["userId"] for x in blocks] == [str(b)]
    assert (await api.client.get(comments, headers=h(a))).json()["items"] == []
    assert (await api.client.put(f"/v1/posts/{post['id']}/like", headers=h(b))).status_code == 404
    refused = await api.client.post(comments, json={"body": "again"}, headers=h(b))
    assert refused.status_code == 404
    myself = await api.client.put(f"/v1/blocks/{a}", headers=h(a))
    assert myself.status_code == 422 and myself.json()["field"] == "userId"
    for _ in range(2):
        assert (await api.client.delete(f"/v1/blocks/{b}", headers=h(a))).status_code == 204
    assert (await api.client.get("/v1/blocks", headers=h(a))).json()["items"] == []
    assert len((await api.client.get(comments, headers=h(a))).json()["items"]) == 1


async def test_deleting_my_account_leaves_nothing_of_me_visible(api: Harness) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    h = api.headers
    assert (
        await api.client.patch(
            "/v1/me/profile", json={"username": f"gone_{b.hex[:8]}"}, headers=h(b)
        )
    ).status_code == 200
    a_post = await publish(api, a)
    b_post = await publish(api, b)
    await api.client.put(f"/v1/posts/{a_post['id']}/like", headers=h(b))
    await api.client.post(f"/v1/posts/{a_post['id']}/comments", json={"body": "hi"}, headers=h(b))
    for _ in range(2):  # idempotent: the same answer
        gone = await api.client.delete("/v1/me", headers=h(b))
        assert gone.status_code == 204, gone.text
    seen = await api.client.get(f"/v1/posts/{a_post['id']}", headers=h(a))
    assert seen.json()["likeCount"] == 0 and seen.json()["commentCount"] == 0
    comments = await api.client.get(f"/v1/posts/{a_post['id']}/comments", headers=h(a))
    assert comments.json()["items"] == []
    assert b_post["id"] not in [p["id"] for p in await feed(api, a)]
    profile = await api.client.get(f"/v1/users/gone_{b.hex[:8]}", headers=h(a))
    assert profile.status_code == 404
    assert (await api.client.get(f"/v1/posts/{b_post['id']}", headers=h(a))).status_code == 404
