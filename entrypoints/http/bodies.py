"""Request bodies decoded strictly: a JSON string or a float is not an integer.

Litestar converts a decoded body to its Struct with ``strict=False``, which takes
``"width": "512"`` and ``512.0`` for the integer 512 (issue #19). A route whose body
holds numbers decodes its raw bytes once more with msgspec's strict default.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.entrypoints.http.problems import validation_field

T = TypeVar("T")

#: one decoder per body type, made once
_DECODERS: dict[type, msgspec.json.Decoder[object]] = {}


def strict_json(body: bytes, kind: type[T]) -> T:
    """``body`` as ``kind``, types exactly as declared. Raises InvalidInput naming the
    field (422), as the lenient decoding's errors do."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS.setdefault(kind, msgspec.json.Decoder(kind))
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), field=validation_field(str(exc)) or "body") from exc
    assert isinstance(value, kind)
    return value
