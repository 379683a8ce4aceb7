"""Generation jobs: submit (holds credits), read, cancel (releases them)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.idempotency import request_fingerprint, validate_key
from genstudio.core.model.job_params import VideoInput
from genstudio.core.model.pricing import ModelKind
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.generation.uploads import Upload
from genstudio.core.services.queries import JobView
from genstudio.entrypoints.http.bodies import strict_json
from genstudio.entrypoints.http.deps import GenerationDep, PrincipalDep
from genstudio.entrypoints.http.forms import Form, FormSpec, form_boundary, read_form
from genstudio.entrypoints.http.generation.schemas import (
    ImageRequest,
    JobEventItem,
    JobEventList,
    JobResponse,
    asset_item,
)
from genstudio.ports.imaging import MAX_UPLOAD_BYTES

_encoder = msgspec.json.Encoder()


def _viewed(view: JobView) -> JobResponse:
    return JobResponse.of(
        view.job,
        [asset_item(m.asset, m.url, m.url_expires_at, m.thumbnail_url) for m in view.media],
    )


#: the biggest multipart body the upload endpoints read: three files at their limit
MAX_UPLOAD_REQUEST = 64 * 1024 * 1024
#: what the forms hold, each file at most what the inspector accepts (read as they
#: stream: a part over its limit is refused as it arrives, 413 naming it)
EDIT_FORM = FormSpec.of(
    texts=("model", "prompt", "negativePrompt", "seed", "strength"),
    files={"image": MAX_UPLOAD_BYTES, "mask": MAX_UPLOAD_BYTES},
)
VIDEO_FORM = FormSpec.of(
    texts=(
        "model",
        "inputType",
        "prompt",
        "negativePrompt",
        "durationSeconds",
        "resolution",
        "fps",
        "seed",
    ),
    files={
        "image": MAX_UPLOAD_BYTES,
        "firstFrame": MAX_UPLOAD_BYTES,
        "lastFrame": MAX_UPLOAD_BYTES,
    },
)
_INTEGER = re.compile(r"-?[0-9]{1,19}")
#: core field names -> the multipart names the app sends
_WIRE = {
    "negative_prompt": "negativePrompt",
    "first_frame": "firstFrame",
    "last_frame": "lastFrame",
    "duration_seconds": "durationSeconds",
    "input_type": "inputType",
    "lora_id": "loraId",
    "lora_scale": "loraScale",
}

IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        description="A fresh random key per intended submission; retries reuse it.",
    ),
]


class _Parts:
    """A form read strictly (``forms.read_form``: known names only, text where text,
    files where files, each within its limit); the values, typed, every error an
    InvalidInput naming the part."""

    def __init__(self, form: Form) -> None:
        self.form = form

    def text(self, name: str, default: str | None = None) -> str:
        value = self.form.texts.get(name)
        if value is None:
            if default is None:
                raise InvalidInput(f"{name} is required", field=name)
            return default
        return value

    def integer(self, name: str, default: int | None) -> int | None:
        value = self.form.texts.get(name)
        if value is None or value.strip() == "":
            return default
        text = value.strip()
        # digits only: int() also reads "5_12", "+512" and full-width digits
        if not _INTEGER.fullmatch(text):
            raise InvalidInput(f"{name} must be an integer", field=name)
        return int(text)

    def number(self, name: str, default: float) -> float:
        value = self.form.texts.get(name)
        if value is None or value.strip() == "":
            return default
        try:
            return float(value.strip())
        except ValueError:
            raise InvalidInput(f"{name} must be a number", field=name) from None

    def file(self, name: str) -> Upload | None:
        """The file part as sent; its Content-Type None when the part declared none
        (React Native's FormData without a ``type``): the bytes decide."""
        value = self.form.files.get(name)
        return None if value is None else Upload(value.data, value.content_type)

    def fingerprint(self, path: str) -> str:
        """The request's identity for Idempotency-Key: its fields and the files' digests
        (not the raw body, whose multipart boundary changes on every retry)."""
        kinds = {**dict.fromkeys(self.form.texts, "text"), **dict.fromkeys(self.form.files, "file")}
        parts: list[list[str]] = []
        for name in sorted(kinds):
            if kinds[name] == "file":
                parts.append([name, "file", self.form.files[name].digest])
            else:
                parts.append([name, "text", self.form.texts[name]])
        # encoded as JSON, so that no field's text can pass for another field (a prompt
        # holding "\nresolution=720p" used to match a request with that second field)
        return request_fingerprint("POST", path, _encoder.encode(parts))


@contextmanager
def _wire_fields() -> Iterator[None]:
    """Name the field at fault as the app sent it (``firstFrame``), not as the core
    calls it (``first_frame``)."""
    try:
        yield
    except (InvalidInput, NotFound) as exc:  # NotFound: another user's ``loraId``
        if exc.field is not None:
            exc.field = _WIRE.get(exc.field, exc.field)
        raise


def _submitted(result: Submitted) -> Response[bytes]:
    """202 and the job as it was submitted: the first answer and every replay render
    the same snapshot the same way. A replay of a record from before migration 0012
    sends the response stored then, as it was."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    job_id: uuid.UUID | None
    if result.job is not None:
        status, body, job_id = 202, _encoder.encode(JobResponse.of(result.job)), result.job.id
    else:
        assert result.response is not None
        status, body = result.response.status_code, result.response.body
        job_id = _stored_job_id(body)
    if job_id is not None:
        headers["Location"] = f"/v1/generate/{job_id}"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _stored_job_id(body: bytes) -> uuid.UUID | None:
    """The job id in a response stored before migration 0012 (a JobResponse)."""
    try:
        job_id = msgspec.json.decode(body).get("id")
        return uuid.UUID(job_id) if job_id else None
    except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
        return None


class GenerateController(Controller):
    path = "/v1/generate"
    tags = ["generation"]

    @post(
        "/image",
        summary="Generate images from a prompt (holds the price in credits)",
        status_code=202,
    )
    async def generate_image(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ImageRequest],
        principal: PrincipalDep,
        generation: GenerationDep,
        idempotency_key: Annotated[
            str,
            HeaderParameter(
                name="Idempotency-Key",
                description="A fresh random key per intended submission; retries reuse it.",
            ),
        ],
    ) -> Response[bytes]:
        key = validate_key(idempotency_key)
        # the exact bytes, for the idempotency fingerprint
        body = await request.body()
        request_hash = request_fingerprint("POST", "/v1/generate/image", body)
        data = strict_json(body, ImageRequest)  # "512" and 512.0 are not integers
        with _wire_fields():
            result = await generation.submit_image(
                user_id=principal.user_id,
                email=principal.email,
                model_id=data.model,
                params=data.to_params(),
                idempotency_key=key,
                request_hash=request_hash,
                enhance=data.enhance,
            )
        return _submitted(result)

    @post(
        "/edit",
        summary="Repaint the masked area of an uploaded image (multipart; holds the price)",
        status_code=202,
        request_max_body_size=MAX_UPLOAD_REQUEST,
    )
    async def generate_edit(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        generation: GenerationDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[bytes]:
        key = validate_key(idempotency_key)
        form_boundary(request)  # not a form: 400, whoever sends it
        # the free checks that need no body (402, 403) before a byte of it is read
        await generation.admit_upload(
            user_id=principal.user_id, kind=ModelKind.EDIT, idempotency_key=key
        )
        with _wire_fields():
            parts = _Parts(await read_form(request, EDIT_FORM))
            image, mask = parts.file("image"), parts.file("mask")
            if image is None:
                raise InvalidInput("image is required: the picture to edit", field="image")
            if mask is None:
                raise InvalidInput("mask is required: where to repaint", field="mask")
            result = await generation.submit_edit(
                user_id=principal.user_id,
                email=principal.email,
                model_id=parts.text("model"),
                prompt=parts.text("prompt"),
                negative_prompt=parts.text("negativePrompt", ""),
                seed=parts.integer("seed", None),
                strength=parts.number("strength", 0.85),
                image=image,
                mask=mask,
                idempotency_key=key,
                request_hash=parts.fingerprint("/v1/generate/edit"),
            )
        return _submitted(result)

    @post(
        "/video",
        summary="Make a video from text, an image or two keyframes (multipart; holds the price)",
        status_code=202,
        request_max_body_size=MAX_UPLOAD_REQUEST,
    )
    async def generate_video(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        generation: GenerationDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[bytes]:
        key = validate_key(idempotency_key)
        form_boundary(request)  # not a form: 400, whoever sends it
        # the free checks that need no body (402, 403) before a byte of it is read
        await generation.admit_upload(
            user_id=principal.user_id, kind=ModelKind.VIDEO, idempotency_key=key
        )
        with _wire_fields():
            parts = _Parts(await read_form(request, VIDEO_FORM))
            raw_type = parts.text("inputType", VideoInput.TEXT.value)
            try:
                input_type = VideoInput(raw_type)
            except ValueError:
                raise InvalidInput(
                    f"inputType must be one of {', '.join(v.value for v in VideoInput)}",
                    field="inputType",
                ) from None
            result = await generation.submit_video(
                user_id=principal.user_id,
                email=principal.email,
                model_id=parts.text("model"),
                input_type=input_type,
                prompt=parts.text("prompt"),
                negative_prompt=parts.text("negativePrompt", ""),
                duration_seconds=parts.integer("durationSeconds", 5) or 0,
                resolution=parts.text("resolution", "480p"),
                fps=parts.integer("fps", 16) or 0,
                seed=parts.integer("seed", None),
                image=parts.file("image"),
                first_frame=parts.file("firstFrame"),
                last_frame=parts.file("lastFrame"),
                idempotency_key=key,
                request_hash=parts.fingerprint("/v1/generate/video"),
            )
        return _submitted(result)

    @get("/{job_id:uuid}/events", summary="What happened to the job (retries, results)")
    async def job_events(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, generation: GenerationDep
    ) -> JobEventList:
        events = await generation.events(user_id=principal.user_id, job_id=job_id)
        return JobEventList(
            items=[
                JobEventItem(id=e.id, kind=e.kind.value, message=e.message, created_at=e.created_at)
                for e in events
            ]
        )

    @get("/{job_id:uuid}", summary="A job's status, progress and result assets")
    async def get_job(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, generation: GenerationDep
    ) -> JobResponse:
        return _viewed(await generation.view(user_id=principal.user_id, job_id=job_id))

    @post(
        "/{job_id:uuid}/cancel",
        summary="Cancel an unfinished job and release its credits",
        status_code=200,
    )
    async def cancel(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, generation: GenerationDep
    ) -> JobResponse:
        job = await generation.cancel(user_id=principal.user_id, job_id=job_id)
        return JobResponse.of(job)  # a job that can still be cancelled has no results
