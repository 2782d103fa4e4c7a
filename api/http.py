"""HTTP plumbing shared by the API handlers: JSON errors, body reading, error middleware."""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, overload

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.schemas import first_problem
from errors import StoreUnavailable
from logs import REQUEST_ID

__all__ = [
    "AnswerMismatch",
    "ApiProblem",
    "echo_request_id",
    "error_response",
    "errors_middleware",
    "iso",
    "json_response",
    "model_response",
    "path_param",
    "query_param",
    "read_json",
    "request_id_middleware",
]

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


def model_response(
    model: type[BaseModel],
    data: Mapping[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """`data` as JSON, once `model` (the answer the route's OpenAPI operation publishes) accepts
    it: a handler cannot serve a shape the document does not describe. The dict is served as
    built, not re-serialized, so checking changes nothing on the wire. A mismatch is Herald's
    bug, so it is a 500 (logged), never the caller's 400."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise AnswerMismatch(f"{model.__name__} does not describe this answer: {exc}") from exc
    return json_response(data, status, headers)


class AnswerMismatch(Exception):
    """A handler built an answer its declared response model does not describe."""


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


@overload
def iso(epoch: float, *, seconds: bool = False) -> str: ...


@overload
def iso(epoch: float | None, *, seconds: bool = False) -> str | None: ...


def iso(epoch: float | None, *, seconds: bool = False) -> str | None:
    """An epoch as the API writes times: RFC 3339 in UTC with `Z` (None stays None). With
    `seconds`, whole seconds only (the fraction cut, not rounded: never a time still to come)."""
    if epoch is None:
        return None
    if seconds:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


MAX_JSON_DEPTH = 64
"""How deeply arrays and objects may nest in a request body (cards and data included)."""


def _not_json(message: str) -> ApiProblem:
    return ApiProblem(400, "invalid_json", f"the body is not valid JSON: {message}")


def _reject_constant(name: str) -> Any:
    raise _not_json(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _not_json(f"the number {text[:40]} is out of range")
    return value


def _check_parsed(document: Any) -> None:
    """What json.loads lets through but JSON (RFC 8259) and the stores do not: unpaired
    surrogates (not Unicode, cannot be stored as UTF-8) and unbounded nesting."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _not_json("a string holds an unpaired UTF-16 surrogate") from exc
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _not_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or an ApiProblem saying precisely what is wrong with it."""
    if request.content_type != "application/json":
        raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiProblem(413, "body_too_large", str(exc.text or "request body too large")) from exc
    try:
        # JSON on the wire is UTF-8 (RFC 8259); json.loads alone would also guess UTF-16/32.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_json(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        # NaN/Infinity are Python's extensions, not JSON; 1e999 would become infinity.
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise _not_json(str(exc)) from exc
    except RecursionError as exc:
        raise _not_json(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    _check_parsed(document)
    return document


def path_param(request: web.Request, name: str, rule: TypeAdapter[str]) -> str:
    """A path parameter checked against the same rule the OpenAPI document publishes for it."""
    value = request.match_info[name]
    try:
        return rule.validate_python(value)
    except ValidationError as exc:
        problem = first_problem(exc)
        raise ApiProblem(400, "invalid_field", problem.message, name) from exc


def query_param(request: web.Request, name: str) -> str | None:
    """A query parameter given at most once (a repeat would be ambiguous: which one counts?)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiProblem(400, "invalid_field", f"{name} may be given only once", name)
    return values[0] if values else None


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
    except StoreUnavailable as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(
            503, "store_unavailable", "the store is not reachable; try again shortly",
            headers={"Retry-After": "5"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "an unexpected error occurred")


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REQUEST_ID_KEY = web.RequestKey("herald_request_id", str)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request's log lines with an id (the caller's X-Request-Id, if sane)."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[_REQUEST_ID_KEY] = request_id
    # Not reset on the way out: aiohttp writes the access-log line after the handler returns,
    # in the same task, and it should carry the id too; the next request sets its own.
    REQUEST_ID.set(request_id)
    return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, streamed or error, carries the request's id."""
    request_id = request.get(_REQUEST_ID_KEY)
    if request_id:
        response.headers["X-Request-Id"] = request_id
