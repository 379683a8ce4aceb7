"""Photo sets for personal models: create, upload one photo at a time, read the
verdicts, delete. Free (no credits), bounded (photos per set, sets per user)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody

from genstudio.core.model.errors import InvalidInput
from genstudio.entrypoints.http.deps import PhotoSetsDep, PrincipalDep
from genstudio.entrypoints.http.forms import FormSpec, form_boundary, read_form
from genstudio.entrypoints.http.training.schemas import (
    CreatePhotoSetRequest,
    PhotoItem,
    PhotoSetItem,
    PhotoSetList,
    PhotoSetResponse,
)
from genstudio.ports.vision import MAX_PHOTO_BYTES

#: one photo at its limit, and the multipart framing around it
MAX_PHOTO_REQUEST = MAX_PHOTO_BYTES + 64 * 1024
#: one file part, ``photo``, read as it streams (a larger one: 413 naming it)
PHOTO_FORM = FormSpec.of(files={"photo": MAX_PHOTO_BYTES}, max_parts=4)


async def _photo_bytes(request: Request[Any, Any, Any]) -> bytes:
    """The one ``photo`` file of the form; anything else is refused naming the part."""
    form = await read_form(request, PHOTO_FORM)
    photo = form.files.get("photo")
    if photo is None:
        raise InvalidInput("photo is required: a file part", field="photo")
    if not photo.data:
        raise InvalidInput("the photo is empty", field="photo")
    return photo.data


class TrainingPhotosController(Controller):
    path = "/v1/training/photo-sets"
    tags = ["training"]

    @post("", status_code=201, summary="Create a photo set (free)")
    async def create_set(
        self,
        principal: PrincipalDep,
        photo_sets: PhotoSetsDep,
        data: JSONBody[CreatePhotoSetRequest | None] = None,
    ) -> PhotoSetResponse:
        created = await photo_sets.create_set(
            principal.user_id, data.name if data else None, email=principal.email
        )
        view = await photo_sets.view(principal.user_id, created.id)
        return PhotoSetResponse.of(view, photo_sets.limits.max_photos_per_set)

    @get("", summary="The user's photo sets, newest first")
    async def list_sets(self, principal: PrincipalDep, photo_sets: PhotoSetsDep) -> PhotoSetList:
        summaries = await photo_sets.list_sets(principal.user_id)
        return PhotoSetList(items=[PhotoSetItem.of(s) for s in summaries])

    @get("/{set_id:uuid}", summary="A photo set: every photo with its verdict and a signed URL")
    async def get_set(
        self, set_id: FromPath[uuid.UUID], principal: PrincipalDep, photo_sets: PhotoSetsDep
    ) -> PhotoSetResponse:
        view = await photo_sets.view(principal.user_id, set_id)
        return PhotoSetResponse.of(view, photo_sets.limits.max_photos_per_set)

    @post(
        "/{set_id:uuid}/photos",
        status_code=201,
        summary="Upload one photo (multipart, free): it is checked and gets its verdict",
        request_max_body_size=MAX_PHOTO_REQUEST,
    )
    async def add_photo(
        self,
        set_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        photo_sets: PhotoSetsDep,
    ) -> PhotoItem:
        form_boundary(request)  # not a form: 400
        # not the user's set, or a full one: refused before the photo is read
        await photo_sets.check_room(principal.user_id, set_id)
        data = await _photo_bytes(request)
        photo = await photo_sets.add_photo(principal.user_id, set_id, data)
        return PhotoItem.of(photo, await photo_sets.url_of(photo))

    @delete("/{set_id:uuid}/photos/{photo_id:uuid}", status_code=204, summary="Delete a photo")
    async def delete_photo(
        self,
        set_id: FromPath[uuid.UUID],
        photo_id: FromPath[uuid.UUID],
        principal: PrincipalDep,
        photo_sets: PhotoSetsDep,
    ) -> None:
        await photo_sets.delete_photo(principal.user_id, set_id, photo_id)

    @delete("/{set_id:uuid}", status_code=204, summary="Delete a set with its photos and files")
    async def delete_set(
        self, set_id: FromPath[uuid.UUID], principal: PrincipalDep, photo_sets: PhotoSetsDep
    ) -> None:
        await photo_sets.delete_set(principal.user_id, set_id)
