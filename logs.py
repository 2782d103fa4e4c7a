"""Logging set-up: JSON lines with request and notification ids, or plain text for a terminal.

The ids live in context variables, set where a request or a notification's work starts, so
every line logged underneath carries them without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

from aiohttp.http_exceptions import HttpProcessingError

__all__ = [
    "NOTIFICATION_ID",
    "REQUEST_ID",
    "JsonFormatter",
    "MalformedRequests",
    "configure_logging",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("herald_request_id", default=None)
NOTIFICATION_ID: ContextVar[str | None] = ContextVar("herald_notification_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["requestId"] = request_id
        notification_id = NOTIFICATION_ID.get()
        if notification_id:
            entry["notificationId"] = notification_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextWithIds(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={v}" for k, v in (("req", REQUEST_ID.get()), ("ntf", NOTIFICATION_ID.get()))
               if v]
        return f"{line} [{' '.join(ids)}]" if ids else line


class MalformedRequests(logging.Filter):
    """For aiohttp's server logger: a request its HTTP parser refused (a NUL or line break in a
    header, a bad Content-Length...) is answered 400 and logged by aiohttp as an ERROR with a
    traceback. It is the client's mistake: one WARNING line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (remote, " ".join(str(exc.message).split())[:200])
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(
    level: str, fmt: Literal["auto", "json", "text"] = "auto", stream: TextIO | None = None
) -> None:
    """Root logging for the process; `auto` is text on a terminal and JSON otherwise."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if use_json else _TextWithIds(_TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiosqlite logs every statement with its parameters at DEBUG: too much, and personal data.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    # The Azure SDKs log every HTTP request and response (headers included) at INFO.
    logging.getLogger("azure").setLevel(max(logging.WARNING, root.level))
