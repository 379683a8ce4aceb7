"""The social side over HTTP on the real Postgres: two users; A publishes, B sees it in
the feed, likes, comments, shares (the preview page carries the image, escaped); blocks
hide both ways; unlisted posts open only by their link; usernames are unique."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from genstudio.core.model.media import MediaAsset, MediaKind, png_dimensions
from tests.integration.test_http_api import PROBLEM, Harness, api

pytestmark = pytest.mark.postgres
__all__ = ["api"]  # the fixture, used by name

# a 2x1 PNG: enough for the media route to serve and the preview to size
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000020000000108020000007b40e8dd"
    "0000000c4944415478da63f8cfc0f01f0005fe02fe0dcda9ac0000000049454e44ae426082"
)


async def an_asset(api: Harness, user: uuid.UUID) -> uuid.UUID:
    container = api.client.app.state.container
    asset_id = uuid.uuid4()
    key = f"{user}/{asset_id}.png"
    await container.storage().put(key, PNG, "image/png")
    async with api.uow_factory() as uow:
        await uow.profiles.ensure(user, None)
        await uow.media.add(
            MediaAsset(
                id=asset_id,
                user_id=user,
                kind=MediaKind.IMAGE,
                storage_key=key,
                content_type="image/png",
                width=2,
                height=1,
                byte_size=len(PNG),
                prompt="a cat",
                model_id="flux-schnell",
                job_id=None,
                created_at=datetime.now(UTC),
            )
        )
        await uow.commit()
    return asset_id


async def publish(
    api: Harness, user: uuid.UUID, visibility: str = "public", caption: str = "hi"
) -> dict[str, object]:
    asset_id = await an_asset(api, user)
    response = await api.client.post(
        "/v1/posts",
        json={"assetId": str(asset_id), "caption": caption, "visibility": visibility},
        headers=api.headers(user),
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def feed(api: Harness, user: uuid.UUID) -> list[dict[str, object]]:
    response = await api.client.get("/v1/feed", headers=api.headers(user))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_a_post_goes_from_publishing_to_feed_like_comment_and_share(api: Harness) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    h = api.headers
    assert (
        await api.client.patch("/v1/me/profile", json={"username": "Ada_1"}, headers=h(a))
    ).json()["username"] == "ada_1"
    taken = await api.client.patch("/v1/me/profile", json={"username": "ADA_1"}, headers=h(b))
    assert taken.status_code == 409 and taken.json()["field"] == "username"
    assert taken.headers["content-type"] == PROBLEM

    post = await publish(api, a, caption='<script>alert("x")</script> cat')
    assert post["state"] == "visible" and post["likeCount"] == 0
    seen = await feed(api, b)
    assert [p["id"] for p in seen] == [post["id"]]
    assert seen[0]["author"]["username"] == "ada_1" and seen[0]["likedByMe"] is False  # type: ignore[index]
    media_url = httpx.URL(seen[0]["media"]["url"])  # type: ignore[index]
    assert media_url.path == f"/m/{post['id']}/0"
    served = await api.client.get(media_url.path)
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"

    for _ in range(2):  # idempotent
        assert (
            await api.client.put(f"/v1/posts/{post['id']}/like", headers=h(b))
        ).status_code == 204
    comment = await api.client.post(
        f"/v1/posts/{post['id']}/comments", json={"body": "lovely"}, headers=h(b)
    )
    assert comment.status_code == 201, comment.text
    again = (await feed(api, b))[0]
    assert (again["likeCount"], again["commentCount"], again["likedByMe"]) == (1, 1, True)
    comments = (await api.client.get(f"/v1/posts/{post['id']}/comments", headers=h(a))).json()
    assert [c["body"] for c in comments["items"]] == ["lovely"]
    stats = (await api.client.get("/v1/me/stats", headers=h(a))).json()
    assert (stats["likesReceived"], stats["posts"]) == (1, 1)

    share = (await api.client.post(f"/v1/posts/{post['id']}/share", headers=h(b))).json()
    again_share = (await api.client.post(f"/v1/posts/{post['id']}/share", headers=h(b))).json()
    assert share == again_share  # a stable link
    page = await api.client.get(httpx.URL(share["url"]).path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'property="og:image" content="{media_url}"' in page.text
    assert 'property="og:image:width" content="2"' in page.text
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert png_dimensions(PNG) == (2, 1)


async def test_blocks_hide_both_ways_and_stop_likes_and_comments(api: Harness) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    post = await publish(api, a)
    comment = await api.client.post(
        f"/v1/posts/{post['id']}/comments", json={"body": "first"}, headers=api.headers(b)
    )
    assert comment.status_code == 201
    async with api.uow_factory() as uow:  # the blocks routes are trust and safety's
        await uow.social.block(a, b, datetime.now(UTC))
        await uow.commit()
    assert [p["id"] for p in await feed(api, b)] == []
    like = await api.client.put(f"/v1/posts/{post['id']}/like", headers=api.headers(b))
    assert like.status_code == 404
    said = await api.client.post(
        f"/v1/posts/{post['id']}/comments", json={"body": "again"}, headers=api.headers(b)
    )
    assert said.status_code == 404
    mine = (await api.client.get(f"/v1/posts/{post['id']}/comments", headers=api.headers(a))).json()
    assert mine["items"] == []


async def test_unlisted_posts_open_only_by_their_link_and_bad_input_names_the_field(
    api: Harness,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    post = await publish(api, a, visibility="unlisted")
    assert await feed(api, b) == []
    share = (await api.client.post(f"/v1/posts/{post['id']}/share", headers=api.headers(a))).json()
    assert (await api.client.get(httpx.URL(share["url"]).path)).status_code == 200
    assert (await api.client.get(f"/m/{post['id']}/0")).status_code == 404  # signed URLs only
    asset_id = await an_asset(api, a)
    too_long = await api.client.post(
        "/v1/posts",
        json={"assetId": str(asset_id), "caption": "x" * 2201, "visibility": "public"},
        headers=api.headers(a),
    )
    assert too_long.status_code == 422 and too_long.json()["field"] == "caption"
    no_visibility = await api.client.post(
        "/v1/posts", json={"assetId": str(asset_id)}, headers=api.headers(a)
    )
    assert no_visibility.status_code == 422 and no_visibility.json()["field"] == "visibility"
    not_mine = await api.client.post(
        "/v1/posts",
        json={"assetId": str(asset_id), "visibility": "public"},
        headers=api.headers(b),
    )
    assert not_mine.status_code == 404
