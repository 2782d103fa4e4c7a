"""HTTP plumbing shared by the API handlers: JSON errors, body reading, error middleware."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from api.schemas import first_problem

__all__ = ["ApiProblem", "error_response", "errors_middleware", "json_response", "read_json"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiProblem(Exception):
    """Raised by handlers to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        data,
        status=status,
        headers=headers,
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
    )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message, "field": field}}, status, headers
    )


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or an ApiProblem saying precisely what is wrong with it."""
    if request.content_type != "application/json":
        raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiProblem(413, "body_too_large", str(exc.text or "request body too large")) from exc
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every API failure becomes `{"error": {...}}` with a 4xx; nothing leaks out as a 500 page."""
    try:
        return await handler(request)
    except ApiProblem as problem:
        return error_response(problem.status, problem.code, problem.message, problem.field)
    except ValidationError as exc:
        p = first_problem(exc)
        return error_response(400, p.code, p.message, p.field)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path == "/api/messages":
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(
            exc.status,
            code,
            exc.text or exc.reason,
            headers={
                k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")
            },
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "an unexpected error occurred")
