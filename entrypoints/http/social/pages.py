"""Unversioned social pages: share links (``/p/{shareId}``) and public media.

A share page is a small HTML document with Open Graph and Twitter card tags, so
that a link pasted in a chat shows a preview; every value is HTML-escaped. Public
media (``/m/{postId}/{n}``, ``/avatars/{userId}/{file}``) answer with
``Cache-Control: public, max-age=31536000, immutable``: the bytes behind one URL
never change (a new avatar gets a new file name), so a CDN may keep them. A post
that stops being public answers 404 from then on; a CDN keeps what it cached until
purged (the seam for a purge is the unpublish use case's after-commit).
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

from litestar import Request, Response, get, route
from litestar.enums import HttpMethod
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from genstudio.core.model.errors import NotFound
from genstudio.core.model.social import Visibility
from genstudio.entrypoints.http.deps import PostsDep, SettingsDep, StorageDep
from genstudio.entrypoints.http.media.controller import Unsatisfiable, byte_range
from genstudio.ports.storage import ObjectNotFound

PUBLIC_CACHE = "public, max-age=31536000, immutable"


def _meta(prop: str, value: object, *, name: bool = False) -> str:
    attr = "name" if name else "property"
    return f'<meta {attr}="{escape(prop)}" content="{escape(str(value))}">'


@get("/p/{share_id:str}", tags=["social"], summary="A share link's preview page (no token)")
async def share_page(
    share_id: FromPath[str], posts: PostsDep, settings: SettingsDep
) -> Response[str]:
    try:
        item = await posts.shared(share_id)
    except NotFound:
        raise NotFoundException("no such link") from None
    post, author = item.view.post, item.view.author
    who = author.display_name or (f"@{author.username}" if author.username else "someone")
    title = f"{who} on genstudio"
    description = post.caption or "Made with genstudio"
    url = f"{settings.server.base_url}/p/{share_id}"
    tags = [
        _meta("og:type", "video.other" if post.media_kind.value == "video" else "article"),
        _meta("og:site_name", "genstudio"),
        _meta("og:title", title),
        _meta("og:description", description),
        _meta("og:url", url),
        _meta("twitter:title", title, name=True),
        _meta("twitter:description", description, name=True),
    ]
    image = item.media.poster_url if post.media_kind.value == "video" else item.media.url
    if image:
        tags += [_meta("og:image", image), _meta("twitter:image", image, name=True)]
    if post.media_kind.value == "video":
        tags += [
            _meta("og:video", item.media.url),
            _meta("og:video:type", post.content_type),
            _meta("og:video:width", post.width),
            _meta("og:video:height", post.height),
            _meta("twitter:card", "player", name=True),
        ]
    else:
        tags += [
            _meta("og:image:type", post.content_type),
            _meta("og:image:width", post.width),
            _meta("og:image:height", post.height),
            _meta("twitter:card", "summary_large_image", name=True),
        ]
    media_tag = (
        f'<video src="{escape(item.media.url)}" controls playsinline></video>'
        if post.media_kind.value == "video"
        else f'<img src="{escape(item.media.url)}" alt="{escape(description)}">'
    )
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>{''.join(tags)}"
        f'<link rel="canonical" href="{escape(url)}"></head>'
        f"<body><main>{media_tag}<p>{escape(description)}</p>"
        f'<a href="genstudio://p/{escape(share_id)}">Open in genstudio</a></main></body></html>'
    )
    # an unlisted post's page carries a signed, expiring media URL: not for shared caches
    cache = "public, max-age=300" if post.visibility is Visibility.PUBLIC else "private, max-age=60"
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": cache, "X-Robots-Tag": "noindex"},
    )


async def _serve(
    request: Request[Any, Any, Any], storage: StorageDep, key: str, content_type: str
) -> Response[bytes]:
    try:
        data = await storage.get(key)
    except ObjectNotFound:
        raise NotFoundException("no such media") from None
    headers = {"Cache-Control": PUBLIC_CACHE, "Accept-Ranges": "bytes"}
    try:
        wanted = byte_range(request.headers.get("range"), len(data))
    except Unsatisfiable:
        return Response(
            b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"}
        )
    if wanted is None:
        body = b"" if request.method == "HEAD" else data
        return Response(body, media_type=content_type, headers=headers)
    first, last = wanted
    return Response(
        b"" if request.method == "HEAD" else data[first : last + 1],
        status_code=206,
        media_type=content_type,
        headers={**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"},
    )


@route(
    "/m/{post_id:uuid}/{n:int}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["social"],
    summary="A public post's media (0) or poster (1); cacheable for a year",
)
async def public_media(
    request: Request[Any, Any, Any],
    post_id: FromPath[uuid.UUID],
    n: FromPath[int],
    posts: PostsDep,
    storage: StorageDep,
) -> Response[bytes]:
    try:
        key, content_type = await posts.public_file(post_id, n)
    except NotFound:
        raise NotFoundException("no such media") from None
    return await _serve(request, storage, key, content_type)


@route(
    "/avatars/{user_id:uuid}/{name:str}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["social"],
    summary="A user's avatar; a new upload gets a new name, so cacheable for a year",
)
async def avatar(
    request: Request[Any, Any, Any],
    user_id: FromPath[uuid.UUID],
    name: FromPath[str],
    posts: PostsDep,
    storage: StorageDep,
) -> Response[bytes]:
    try:
        key = await posts.avatar_file(user_id, name)
    except NotFound:
        raise NotFoundException("no such avatar") from None
    return await _serve(request, storage, key, "image/jpeg")


PAGES: list[HTTPRouteHandler] = [share_page, public_media, avatar]
