"""Logging set-up: JSON lines with request and notification ids, or plain text for a terminal.

The ids live in context variables, set where a request or a notification's work starts, so
every line logged underneath carries them without being passed around.

No secret goes into a log line (DESIGN: Security). Herald's own messages never carry one; the
access log is written by `AccessLog`, which masks the query values of a request (the pages'
`?token=`, a client's `?code=` or `?sig=`) except those of the API's plain parameters, and logs
no request header at all (so no `Authorization`); both formatters pass every line through
`redact` as a last net for what a library might log (a bearer credential, a token-shaped
string, a `"token": "..."` field).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal, TextIO
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

__all__ = [
    "NOTIFICATION_ID",
    "REQUEST_ID",
    "AccessLog",
    "JsonFormatter",
    "MalformedRequests",
    "configure_logging",
    "quiet_libraries",
    "redact",
    "redact_target",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("herald_request_id", default=None)
NOTIFICATION_ID: ContextVar[str | None] = ContextVar("herald_notification_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

MASK: Final = "[redacted]"

PLAIN_QUERY_NAMES: Final = frozenset({"limit", "unread", "userId", "bucket"})
"""Query parameters of Herald's API whose values the access log shows; every other value (a
page's `token`, anything a client sends) is masked."""

_JSON_WORDS = r"token|key|sig|signature|secret|password|passwd|auth|credential|p256dh"
_CREDENTIAL_WORDS = _JSON_WORDS + "|code"
_REDACTIONS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Authorization: Bearer <x> / Basic <x> (and "Bearer <x>" anywhere in a message).
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+"), rf"\1\2{MASK}"),
    # A query parameter whose name says credential: ?token=, &code=, &sig=, &access_token=, ...
    (
        re.compile(rf"(?i)([?&;][A-Za-z0-9_.-]*(?:{_CREDENTIAL_WORDS})[A-Za-z0-9_.-]*=)"
                   r"[^&\s\"'#]+"),
        rf"\1{MASK}",
    ),
    # A JSON-ish field that holds a secret: "token": "...", "fcmToken": "...", "auth": "..."
    # ("code" only in a query, where it is OAuth's; a JSON "code" is an error code).
    (
        re.compile(rf"(?i)(\"[A-Za-z0-9_]*(?:{_JSON_WORDS})[A-Za-z0-9_]*\"\s*:\s*)"
                   r"\"[^\"]*\""),
        rf'\1"{MASK}"',
    ),
    # Signed tokens by their shape: a JWT or a link token (base64url JSON, "." signature).
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"), MASK),
    # An FCM registration token.
    (re.compile(r"[A-Za-z0-9_-]+:APA91b[A-Za-z0-9_-]+"), MASK),
)


def redact(text: str) -> str:
    """`text` with anything that looks like a credential masked (the formatters' last net)."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_target(path: str, query: str) -> str:
    """A request target for the access log: the path, and the query with every value masked
    but those of `PLAIN_QUERY_NAMES` (raw, still percent-encoded, as the client sent them)."""
    if not query:
        return path
    parts: list[str] = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        if unquote_plus(name) in PLAIN_QUERY_NAMES or not equals:
            parts.append(item)
        else:
            parts.append(f"{name}={MASK}")
    return f"{path}?{'&'.join(parts)}"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access log without secrets: remote address, method, the target as
    `redact_target` gives it, protocol, status, body size, time taken and the user agent. No
    other header (Authorization, Cookie, Referer: a page's address may carry its token)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        url = request.rel_url
        agent = request.headers.get("User-Agent", "-")
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs "%s"',
            request.remote or "-",
            request.method,
            redact(redact_target(url.raw_path, url.raw_query_string)),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            redact(agent[:256]),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["requestId"] = request_id
        notification_id = NOTIFICATION_ID.get()
        if notification_id:
            entry["notificationId"] = notification_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _TextWithIds(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
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
    quiet_libraries(root.level)


def quiet_libraries(level: int) -> None:
    """Levels for libraries that log what must not be logged, given the root's level."""
    # aiosqlite logs every statement with its parameters at DEBUG: too much, and personal data
    # (and secrets: a browser's push auth secret, a phone's FCM token are parameters).
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, level))
    # The Azure SDKs log every HTTP request and response (headers included) at INFO.
    logging.getLogger("azure").setLevel(max(logging.WARNING, level))
