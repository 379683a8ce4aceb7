"""Two users' social journey against real processes (the API and a worker on the
machine's Postgres and Redis): A generates and publishes, B sees it in the feed,
likes, comments, shares (the preview page carries the image) and reports; A blocks B
and B's comment disappears for A; B deletes the account and nothing of B remains
visible (feed, comments, like counts, profile, media)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import Service
from tests.e2e.test_image_journey import poll_until_done, service, submit, user_client

pytestmark = pytest.mark.e2e
__all__ = ["service"]  # the fixture, used by name


def generate_and_publish(service: Service, client: httpx.Client, user: uuid.UUID) -> dict:  # type: ignore[type-arg]
    service.cli("credits", "grant", str(user), "2")
    job = submit(client, str(uuid.uuid4()), count=1).json()
    done = poll_until_done(client, job["id"])
    assert done["status"] == "succeeded", done
    asset = done["assets"][0]  # type: ignore[index]
    published = client.post(
        "/v1/posts", json={"assetId": asset["id"], "caption": "dusk", "visibility": "public"}
    )
    assert published.status_code == 201, published.text
    return {"post": published.json(), "asset": asset}


def test_two_users_publish_like_comment_report_block_and_delete(service: Service) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    b_name = f"b_{b.hex[:8]}"
    with user_client(service, a) as alice, user_client(service, b) as bob:
        assert alice.patch("/v1/me/profile", json={"username": f"a_{a.hex[:8]}"}).status_code == 200
        assert bob.patch("/v1/me/profile", json={"username": b_name}).status_code == 200
        mine = generate_and_publish(service, alice, a)["post"]
        bobs = generate_and_publish(service, bob, b)

        # B sees A's post, likes, comments, shares
        assert mine["id"] in [p["id"] for p in bob.get("/v1/feed").json()["items"]]
        assert bob.put(f"/v1/posts/{mine['id']}/like").status_code == 204
        said = bob.post(f"/v1/posts/{mine['id']}/comments", json={"body": "lovely"})
        assert said.status_code == 201
        share = bob.post(f"/v1/posts/{mine['id']}/share").json()
        page = httpx.get(f"{service.base}/p/{share['shareId']}", timeout=10)
        assert page.status_code == 200 and 'property="og:image"' in page.text
        image = httpx.get(f"{service.base}/m/{mine['id']}/0", timeout=10)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        reported = bob.post(
            "/v1/reports",
            json={"targetType": "post", "targetId": mine["id"], "reason": "spam"},
        )
        assert reported.status_code == 201, reported.text

        # A blocks B: B's comment disappears for A, B can no longer like A's posts
        comments = f"/v1/posts/{mine['id']}/comments"
        assert [c["body"] for c in alice.get(comments).json()["items"]] == ["lovely"]
        assert alice.put(f"/v1/blocks/{b}").status_code == 204
        assert alice.get(comments).json()["items"] == []
        assert bob.put(f"/v1/posts/{mine['id']}/like").status_code == 404
        assert bob.get(f"/v1/posts/{mine['id']}").status_code == 404
        assert alice.delete(f"/v1/blocks/{b}").status_code == 204
        assert alice.get(comments).json()["items"] != []

        # B deletes the account: nothing of B remains visible
        for _ in range(2):
            assert bob.delete("/v1/me").status_code == 204
        seen = alice.get(f"/v1/posts/{mine['id']}").json()
        assert (seen["likeCount"], seen["commentCount"]) == (0, 0)
        assert alice.get(comments).json()["items"] == []
        assert bobs["post"]["id"] not in [p["id"] for p in alice.get("/v1/feed").json()["items"]]
        assert alice.get(f"/v1/users/{b_name}").status_code == 404
        assert alice.get(f"/v1/posts/{bobs['post']['id']}").status_code == 404
        gone = httpx.get(f"{service.base}/m/{bobs['post']['id']}/0", timeout=10)
        assert gone.status_code == 404
        # the file itself is gone: its signed URL from before serves nothing
        assert httpx.get(bobs["asset"]["url"], timeout=10).status_code == 404
        # A's post, its image and its share link are untouched
        assert httpx.get(f"{service.base}/p/{share['shareId']}", timeout=10).status_code == 200
