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

__all__ = ["NOTIFICATION_ID", "REQUEST_ID", "JsonFormatter", "configure_logging"]

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
