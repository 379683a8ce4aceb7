"""The social routes: my profile, users, posts, the feed, likes, comments, shares."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.limits import Operation
from genstudio.core.model.media import MediaKind
from genstudio.core.model.social import FeedSort
from genstudio.core.services.social.posts import check_visibility
from genstudio.entrypoints.http.bodies import strict_json
from genstudio.entrypoints.http.deps import (
    ClockDep,
    PostsDep,
    PrincipalDep,
    ProfilesDep,
    SettingsDep,
)
from genstudio.entrypoints.http.forms import FormSpec, read_form
from genstudio.entrypoints.http.social.schemas import (
    AssetPage,
    CommentPage,
    CommentRequest,
    CommentResponse,
    EditPostRequest,
    PostPage,
    PostResponse,
    ProfilePatchRequest,
    ProfileResponse,
    PublishRequest,
    ShareResponse,
    StatsResponse,
    UserResponse,
    decode_cursor,
)
from genstudio.ports.imaging import MAX_UPLOAD_BYTES

SOCIAL_WRITE = {"rate_limit": Operation.SOCIAL_WRITES}
Cursor = Annotated[str | None, QueryParameter(max_length=200)]
#: one file part, ``avatar``, at most what the avatar maker accepts
AVATAR_FORM = FormSpec.of(files={"avatar": MAX_UPLOAD_BYTES}, max_parts=4)
#: that part at its limit, and the multipart framing around it
MAX_AVATAR_REQUEST = MAX_UPLOAD_BYTES + 64 * 1024


class MeSocialController(Controller):
    path = "/v1/me"
    tags = ["profile"]

    @get("/profile", summary="My public profile and preferences")
    async def profile(self, principal: PrincipalDep, profiles: ProfilesDep) -> ProfileResponse:
        found = await profiles.mine(principal.user_id, principal.email)
        return ProfileResponse.of(found, profiles.urls.avatar_of(found))

    @patch("/profile", summary="Edit my profile (absent fields stay; null clears)")
    async def edit_profile(
        self,
        principal: PrincipalDep,
        profiles: ProfilesDep,
        clock: ClockDep,
        data: JSONBody[ProfilePatchRequest],
        request: Request[Any, Any, Any],
    ) -> ProfileResponse:
        # Litestar's conversion is lenient ("isPrivate": 0 as false); the body is read once
        data = strict_json(await request.body(), ProfilePatchRequest)
        edited = await profiles.edit(principal.user_id, principal.email, data.patch(), clock.now())
        return ProfileResponse.of(edited, profiles.urls.avatar_of(edited))

    @put(
        "/profile/avatar",
        summary="Upload my avatar (resized, metadata stripped)",
        request_max_body_size=MAX_AVATAR_REQUEST,
    )
    async def avatar(
        self, principal: PrincipalDep, profiles: ProfilesDep, request: Request[Any, Any, Any]
    ) -> ProfileResponse:
        # read as it streams: a picture over its limit is refused as it arrives (413)
        form = await read_form(request, AVATAR_FORM)
        upload = form.files.get("avatar")
        if upload is None:
            raise InvalidInput("avatar is required: one file part", field="avatar")
        edited = await profiles.set_avatar(
            principal.user_id, principal.email, upload.data, upload.content_type
        )
        return ProfileResponse.of(edited, profiles.urls.avatar_of(edited))

    @get("/stats", summary="My generations, credits, likes and models, aggregated in SQL")
    async def stats(self, principal: PrincipalDep, profiles: ProfilesDep) -> StatsResponse:
        return StatsResponse.of(await profiles.stats(principal.user_id))

    @get("/content", summary="My generated media, newest first")
    async def content(
        self,
        principal: PrincipalDep,
        profiles: ProfilesDep,
        kind: FromQuery[MediaKind | None] = None,
        cursor: Cursor = None,
    ) -> AssetPage:
        page = await profiles.content(
            principal.user_id, kind=kind, after=decode_cursor(cursor), limit=20
        )
        return AssetPage.of(page)

    @get("/liked", summary="Posts I liked and may still see, latest like first")
    async def liked(
        self, principal: PrincipalDep, profiles: ProfilesDep, cursor: Cursor = None
    ) -> PostPage:
        page = await profiles.liked(principal.user_id, after=decode_cursor(cursor), limit=20)
        return PostPage.of(page)


class SocialController(Controller):
    path = "/v1"
    tags = ["social"]

    @get("/users/{username:str}", summary="A user's public profile and the posts I may see")
    async def user(
        self,
        principal: PrincipalDep,
        profiles: ProfilesDep,
        username: FromPath[str],
        cursor: Cursor = None,
    ) -> UserResponse:
        found = await profiles.public(
            username, principal.user_id, after=decode_cursor(cursor), limit=20
        )
        return UserResponse.of(found)

    @get("/feed", summary="Public posts, newest or top; 20 a page")
    async def feed(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        clock: ClockDep,
        sort: FromQuery[FeedSort] = FeedSort.NEW,
        kind: FromQuery[MediaKind | None] = None,
        cursor: Cursor = None,
    ) -> PostPage:
        after = decode_cursor(cursor, score=sort is FeedSort.TOP)
        page = await posts.feed(
            principal.user_id, sort=sort, kind=kind, after=after, now=clock.now()
        )
        return PostPage.of(page)

    @post("/posts", status_code=201, summary="Publish one of my assets", opt=SOCIAL_WRITE)
    async def publish(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        clock: ClockDep,
        data: JSONBody[PublishRequest],
    ) -> PostResponse:
        item = await posts.publish(
            principal.user_id,
            principal.email,
            asset_id=data.asset_id,
            caption=data.caption,
            visibility=check_visibility(data.visibility),
            now=clock.now(),
        )
        return PostResponse.of(item).for_author(item)

    @get("/posts/{post_id:uuid}", summary="One post")
    async def get_post(
        self, principal: PrincipalDep, posts: PostsDep, post_id: FromPath[uuid.UUID]
    ) -> PostResponse:
        item = await posts.get(post_id, principal.user_id)
        response = PostResponse.of(item)
        mine = item.view.post.user_id == principal.user_id
        return response.for_author(item) if mine else response

    @patch("/posts/{post_id:uuid}", summary="Edit my post's caption or visibility")
    async def edit_post(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        clock: ClockDep,
        post_id: FromPath[uuid.UUID],
        data: JSONBody[EditPostRequest],
    ) -> PostResponse:
        visibility = data.visibility if isinstance(data.visibility, str) else None
        item = await posts.edit(
            principal.user_id,
            post_id,
            caption=data.caption if isinstance(data.caption, str) else None,
            visibility=None if visibility is None else check_visibility(visibility),
            now=clock.now(),
        )
        return PostResponse.of(item).for_author(item)

    @delete("/posts/{post_id:uuid}", status_code=204, summary="Unpublish my post")
    async def unpublish(
        self, principal: PrincipalDep, posts: PostsDep, post_id: FromPath[uuid.UUID]
    ) -> None:
        await posts.unpublish(principal.user_id, post_id)

    @put("/posts/{post_id:uuid}/like", status_code=204, summary="Like", opt=SOCIAL_WRITE)
    async def like(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        clock: ClockDep,
        post_id: FromPath[uuid.UUID],
    ) -> None:
        await posts.like(principal.user_id, principal.email, post_id, clock.now())

    @delete("/posts/{post_id:uuid}/like", status_code=204, summary="Unlike", opt=SOCIAL_WRITE)
    async def unlike(
        self, principal: PrincipalDep, posts: PostsDep, post_id: FromPath[uuid.UUID]
    ) -> None:
        await posts.unlike(principal.user_id, post_id)

    @post("/posts/{post_id:uuid}/comments", status_code=201, summary="Comment", opt=SOCIAL_WRITE)
    async def comment(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        clock: ClockDep,
        post_id: FromPath[uuid.UUID],
        data: JSONBody[CommentRequest],
    ) -> CommentResponse:
        item = await posts.comment(
            principal.user_id, principal.email, post_id, data.body, clock.now()
        )
        return CommentResponse.of(item)

    @get("/posts/{post_id:uuid}/comments", summary="A post's comments, oldest first")
    async def comments(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        post_id: FromPath[uuid.UUID],
        cursor: Cursor = None,
    ) -> CommentPage:
        page = await posts.comments(post_id, principal.user_id, after=decode_cursor(cursor))
        return CommentPage.of(page)

    @delete("/comments/{comment_id:uuid}", status_code=204, summary="Delete a comment")
    async def delete_comment(
        self, principal: PrincipalDep, posts: PostsDep, comment_id: FromPath[uuid.UUID]
    ) -> None:
        await posts.delete_comment(principal.user_id, comment_id)

    @post("/posts/{post_id:uuid}/share", status_code=200, summary="A stable public link")
    async def share(
        self,
        principal: PrincipalDep,
        posts: PostsDep,
        settings: SettingsDep,
        post_id: FromPath[uuid.UUID],
    ) -> ShareResponse:
        share_id = await posts.share(principal.user_id, post_id)
        return ShareResponse(share_id=share_id, url=f"{settings.server.base_url}/p/{share_id}")

    @get("/shares/{share_id:str}", summary="The post a share link opens (for the app)")
    async def shared(
        self, principal: PrincipalDep, posts: PostsDep, share_id: FromPath[str]
    ) -> PostResponse:
        del principal  # signed in, but a share link is for anyone
        return PostResponse.of(await posts.shared(share_id))
