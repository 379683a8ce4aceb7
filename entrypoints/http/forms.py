"""Multipart forms read as they stream, each part within its own limit (issue #19).

Litestar's form extractor reads the whole body before a handler runs (its files go to
temporary files), and the handlers then read every file into memory whatever its
size. The upload routes instead take the ``Request`` and call :func:`read_form` once
their free checks passed (the rate limits, the balance, the photo set's room): it
parses ``request.stream()`` chunk by chunk (``multipart``'s push parser, the one
Litestar uses) and keeps of each known part at most its limit: a file part in a
temporary file once it passes :data:`SPOOL_IN_MEMORY` (uploads stream to disk, not
memory), a text part in memory. A part that grows past
its limit is refused at that moment, 413 ``too_large`` naming the part, without
reading on; the route's ``request_max_body_size`` still bounds the body as a whole
(413 naming ``body``), and so does the number of parts.

Parts the form does not know, and repeats, are not kept (their bytes are counted and
dropped); they are refused (422 naming the part) once the form has been read, as are
files sent as text and texts sent as files.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from genstudio.core.model.errors import InvalidInput, TooLarge

#: a text part's limit unless the form says otherwise: a prompt is at most 2,000
#: characters, 8,000 bytes of UTF-8
TEXT_LIMIT = 16 * 1024
#: what a part's header block may hold (Content-Disposition, Content-Type)
MAX_PART_HEAD = 8 * 1024


class FormSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a route's form may hold: its text parts and its file parts, each with the
    most bytes it may have; ``max_parts``: how many parts a body may have at all."""

    texts: Mapping[str, int] = msgspec.field(default_factory=dict)
    files: Mapping[str, int] = msgspec.field(default_factory=dict)
    max_parts: int = 64

    @classmethod
    def of(
        cls, *, texts: tuple[str, ...] = (), files: Mapping[str, int], max_parts: int = 64
    ) -> FormSpec:
        """Texts at ``TEXT_LIMIT`` each, files at their own limits."""
        return cls(texts=dict.fromkeys(texts, TEXT_LIMIT), files=dict(files), max_parts=max_parts)


class FilePart:
    """A file part as it arrived: its bytes are on disk (spooled above
    :data:`SPOOL_IN_MEMORY`), read when the route asks for :attr:`data`, after the form
    is read whole; the temporary file goes with this object."""

    __slots__ = ("_spool", "content_type", "digest", "size")

    def __init__(
        self,
        spool: tempfile.SpooledTemporaryFile[bytes],
        *,
        size: int,
        content_type: str | None,
        digest: str,
    ) -> None:
        self._spool = spool
        self.size = size
        #: the part's own Content-Type; None when it declared none (React Native's
        #: FormData without a ``type``): then the bytes decide
        self.content_type = content_type
        #: SHA-256 of the bytes, hex (what an Idempotency-Key's fingerprint holds)
        self.digest = digest

    @property
    def data(self) -> bytes:
        self._spool.seek(0)
        return self._spool.read()

    def __del__(self) -> None:
        self._spool.close()


class Form(msgspec.Struct, frozen=True):
    texts: dict[str, str]
    files: dict[str, FilePart]


#: what of a file part stays in memory while it streams; past this its bytes go to a
#: temporary file (many slow uploads at once hold disk, not memory: issue #19)
SPOOL_IN_MEMORY = 256 * 1024


class _Part:
    """One part being read: its bytes so far (kept only for a part the form knows)."""

    def __init__(self, segment: MultipartSegment, limit: int | None) -> None:
        self.name: str = segment.name or ""
        self.segment = segment
        self.limit = limit  # None: not kept
        self.size = 0
        self.buffer = bytearray()  # a text part's bytes
        # a file part's bytes: in memory up to SPOOL_IN_MEMORY, then on disk
        self.spool: tempfile.SpooledTemporaryFile[bytes] | None = None
        if limit is not None and segment.filename:
            self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - the FilePart closes it
        self.digest = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        if self.limit is None:
            return
        if self.size + len(chunk) > self.limit:
            self.close()
            raise TooLarge(
                f"{self.name} is larger than {_size(self.limit)}; nothing was kept",
                field=self.name,
            )
        self.size += len(chunk)
        if self.spool is not None:
            self.spool.write(chunk)
        else:
            self.buffer += chunk
        self.digest.update(chunk)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MB" if mib >= 1 else f"{limit} bytes"


def form_boundary(request: Request[Any, Any, Any]) -> bytes:
    """The form's boundary, from the request's head alone (a route may ask before its
    other checks: a body that is not a form is refused whoever sends it). Raises
    ClientException (400 ``malformed_form``) for a body that is not a form."""
    media_type, options = request.content_type
    boundary = options.get("boundary")
    if media_type != "multipart/form-data" or not boundary:
        # the wording is what the problem mapping knows as malformed_form
        raise ClientException("the body is not multipart/form-data")
    return boundary.encode("latin-1")


async def read_form(request: Request[Any, Any, Any], spec: FormSpec) -> Form:
    """The request's form, read once as it streams. Raises TooLarge naming the part
    (or ``body``: too many parts; Litestar's own 413 for a body over the route's
    limit), InvalidInput naming the part (unknown, repeated, a file sent as text or
    text as a file, text that is not UTF-8), ClientException for a body that is not
    multipart/form-data."""
    boundary = form_boundary(request)
    texts: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    problems: list[InvalidInput] = []
    seen: set[str] = set()
    part: _Part | None = None
    try:
        with PushMultipartParser(
            boundary,
            max_header_size=MAX_PART_HEAD,
            max_segment_count=spec.max_parts,
        ) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        part = _start(event, spec, seen, problems)
                    elif event:
                        assert part is not None
                        part.add(event)
                    else:
                        assert part is not None
                        _finish(part, texts, files, problems)
                        part = None
                if parser.closed:
                    break
    except ParserLimitReached:
        raise TooLarge("the form has more parts than this route reads", field="body") from None
    except ParserError:
        raise ClientException("the body is not valid multipart/form-data") from None
    if problems:
        raise problems[0]
    return Form(texts, files)


def _start(
    segment: MultipartSegment, spec: FormSpec, seen: set[str], problems: list[InvalidInput]
) -> _Part:
    """A part begins: keep it if the form knows it and it came first under its name."""
    name = segment.name or ""
    is_file = bool(segment.filename)  # as Litestar reads forms: filename="" is text
    limit: int | None = None
    if name not in spec.texts and name not in spec.files:
        problems.append(InvalidInput(f"unknown field {name!r}", field=name))
    elif name in seen:
        problems.append(InvalidInput(f"{name} is given more than once", field=name))
    elif name in spec.files and not is_file:
        problems.append(InvalidInput(f"{name} must be a file", field=name))
    elif name in spec.texts and is_file:
        problems.append(InvalidInput(f"{name} must be a text field, not a file", field=name))
    else:
        limit = spec.files.get(name) if is_file else spec.texts.get(name)
    seen.add(name)
    return _Part(segment, limit)


def _finish(
    part: _Part, texts: dict[str, str], files: dict[str, FilePart], problems: list[InvalidInput]
) -> None:
    if part.limit is None:
        return
    if part.spool is not None:
        declared = part.segment.header("Content-Type") is not None
        files[part.name] = FilePart(
            part.spool,
            size=part.size,
            content_type=(part.segment.content_type or None) if declared else None,
            digest=part.digest.hexdigest(),
        )
        return
    try:
        texts[part.name] = part.buffer.decode(part.segment.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        problems.append(InvalidInput(f"{part.name} is not UTF-8 text", field=part.name))
