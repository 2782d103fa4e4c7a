"""The route table: each route of Herald's HTTP server declared once.

A `Route` says what serves it (method, path, handler), who may call it (`Auth`), what it takes
(`Body`: the pydantic model its JSON body must satisfy) and how the OpenAPI document describes
it (`Operation`). The auth middleware decides from the declaration of the route aiohttp matched,
the route parses and validates its body, once (`body(request, Model)` hands the handler the
result), and the OpenAPI document, request bodies included, is built from the same
declarations, so none of them depends on path strings or models kept in step with the handlers.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, TypeAdapter

from api.http import ApiProblem, read_json
from api.schemas import ApiError

__all__ = [
    "BACKEND",
    "DATE_TIME",
    "PUBLIC",
    "REF",
    "ROUTES",
    "SELF_AUTHENTICATED",
    "UNAUTHORIZED",
    "Access",
    "Answer",
    "Auth",
    "Body",
    "Operation",
    "RawBody",
    "Route",
    "RouteTable",
    "Schema",
    "backend_or_link",
    "body",
    "error",
    "json_body",
    "named_body",
    "path_id",
    "with_challenge",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ModelT = TypeVar("ModelT", bound=BaseModel)


class Access(enum.Enum):
    """Who may reach a route's handler."""

    PUBLIC = "public"
    """Anyone: the handler checks what it needs itself or nothing at all (the bot's endpoint
    checks Bot Framework tokens, Microsoft Graph's notifications their clientState; health,
    the spec, pages and their assets are open)."""
    BACKEND = "backend"
    """An API key or an Entra ID access token; 401 without (or, on a route with a link purpose,
    a link token for that purpose)."""
    SELF_AUTHENTICATED = "self-authenticated"
    """The handler checks the caller's proof (a link token, a device or subscription secret)
    and also accepts a backend; the middleware records a backend's credentials when given."""


LinkPurpose = Callable[[web.Request], str]
"""The link-token purpose a route accepts for this request (e.g. `operator:{id}`)."""


@dataclass(frozen=True, slots=True)
class Auth:
    access: Access
    link: LinkPurpose | None = None
    """BACKEND routes only: a link token for this purpose is accepted instead of a backend."""


PUBLIC: Final = Auth(Access.PUBLIC)
BACKEND: Final = Auth(Access.BACKEND)
SELF_AUTHENTICATED: Final = Auth(Access.SELF_AUTHENTICATED)


def backend_or_link(purpose: LinkPurpose) -> Auth:
    """A backend, or whoever holds a link token for `purpose` (checked by the middleware)."""
    return Auth(Access.BACKEND, link=purpose)


REF: Final = "#/components/schemas/{model}"


DATE_TIME: Final[dict[str, Any]] = {"format": "date-time"}
"""`json_schema_extra` of an answer's time field (RFC 3339 in UTC, as api/http.py's iso writes)."""


class Answer(BaseModel):
    """A response body: every field it may carry is listed, no others (additionalProperties)."""

    model_config = ConfigDict(extra="forbid")


Operation = Mapping[str, Any]
"""An OpenAPI operation object, with `Schema(Model)` wherever a model's JSON Schema goes (see
`json_body`): the document publishes each such model under components and refers to it."""


@dataclass(frozen=True, slots=True)
class Schema:
    """A pydantic model in an operation: under `requestBody` the schema of what the handler
    accepts (validation), elsewhere of what it answers (serialization)."""

    model: type[BaseModel]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The `content` of a JSON request or response body that `model` describes."""
    return {"application/json": {"schema": Schema(model)}}


def named_body(name: str) -> dict[str, Any]:
    """The `content` of a JSON body whose schema the document builds beside the models."""
    return {"application/json": {"schema": {"$ref": REF.format(model=name)}}}


def error(description: str) -> dict[str, Any]:
    """An error response: `{"error": {...}}` (api/http.py's error_response)."""
    return {"description": description, "content": json_body(ApiError)}


def with_challenge(response: dict[str, Any]) -> dict[str, Any]:
    """A 401 response, which always carries `WWW-Authenticate: Bearer ...`."""
    return {
        **response,
        "headers": {
            "WWW-Authenticate": {
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer "},
            }
        },
    }


UNAUTHORIZED: Final = with_challenge(error("No or wrong API key."))


def path_id(description: str, rule: TypeAdapter[str], name: str = "id") -> dict[str, Any]:
    """A path parameter, published with the rule its handler checks it against."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": rule.json_schema(),
    }


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON request body the route reads and validates against `model`, handed to the
    handler as the model (`body(request, Model)`); the operation's requestBody is generated
    from it. Parsed when the handler first asks, not before it runs: its own checks that come
    first (credentials, path, If-Match) keep answering first, as the API always has."""

    model: type[BaseModel]
    required: bool = True
    """The operation's `requestBody.required`."""
    absent_is_empty: bool = False
    """No body at all reads as `{}` (then the model says what is missing), rather than being
    refused for its media type or as no JSON."""
    not_object: str | None = None
    """The message of a 400 `invalid_body` for JSON that is not an object; None: the model's
    own validation answers (a 400 `invalid_field`)."""

    def __post_init__(self) -> None:
        if not self.required and not self.absent_is_empty:
            raise ValueError(f"an optional {self.model.__name__} body must read absent as {{}}")

    def operation(self) -> dict[str, Any]:
        return {"required": self.required, "content": json_body(self.model)}

    async def parse(self, request: web.Request) -> BaseModel:
        """The body as the model, or the ApiProblem / ValidationError that the errors
        middleware answers with (415, 413, 400 with the field)."""
        document: Any = {} if self.absent_is_empty and not request.can_read_body else None
        if document is None:
            document = await read_json(request)
        if self.not_object is not None and not isinstance(document, dict):
            raise ApiProblem(400, "invalid_body", self.not_object)
        return self.model.model_validate(document)


@dataclass(frozen=True, slots=True)
class RawBody:
    """A request body the handler reads itself, because the route's rules are not the API's
    (the bot's activities, Microsoft Graph's batches: own size limits, lenient reading, own
    error codes); `content` is what the document publishes for it."""

    content: Mapping[str, Any]
    required: bool = True

    def operation(self) -> dict[str, Any]:
        return {"required": self.required, "content": dict(self.content)}


_DECLARED_BODY: Final = web.RequestKey("herald_declared_body", Body)
_BODY: Final = web.RequestKey("herald_body", BaseModel)


async def body(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request's body, parsed and validated (once) as its route declares. Asking for
    another model than the declared one is Herald's bug (a 500), never a second reading."""
    parsed = request.get(_BODY)
    if parsed is None:
        declared = request.get(_DECLARED_BODY)
        if declared is None or declared.model is not model:
            raise RuntimeError(
                f"{request.method} {request.path}: the handler reads a {model.__name__} body, "
                f"its route declares {declared.model.__name__ if declared else 'none'}"
            )
        parsed = await declared.parse(request)
        request[_BODY] = parsed
    if not isinstance(parsed, model):
        raise RuntimeError(f"{request.method} {request.path}: the body is no {model.__name__}")
    return parsed


@dataclass(frozen=True, slots=True)
class Route(web.AbstractRouteDef):
    """One route, declared once. Also an aiohttp route definition (`app.add_routes` takes
    it), but only `RouteTable.add` records its `auth` for the middleware."""

    method: str
    path: str
    handler: Handler
    auth: Auth
    doc: Operation | None = None
    """How the OpenAPI document describes it; None: not in the document (pages, assets).
    Never its requestBody: that is generated from `body`."""
    body: Body | RawBody | None = None

    def __post_init__(self) -> None:
        if self.doc is not None and "requestBody" in self.doc:
            raise ValueError(
                f"{self.method} {self.path}: declare the request body as the route's body "
                "(Body(Model), or RawBody for one the handler reads itself), not in its operation"
            )
        if self.body is not None and self.method in (hdrs.METH_GET, hdrs.METH_HEAD):
            raise ValueError(f"{self.method} {self.path}: a {self.method} takes no body")

    def operation(self) -> dict[str, Any] | None:
        """The OpenAPI operation, its requestBody generated from the declared body."""
        if self.doc is None:
            return None
        if self.body is None:
            return dict(self.doc)
        operation: dict[str, Any] = {}
        for key, value in self.doc.items():
            if key == "responses":
                operation["requestBody"] = self.body.operation()
            operation[key] = value
        operation.setdefault("requestBody", self.body.operation())
        return operation

    def _serve(self) -> Handler:
        declared, handler = self.body, self.handler
        if not isinstance(declared, Body):
            return handler

        async def serve(request: web.Request) -> web.StreamResponse:
            request[_DECLARED_BODY] = declared
            response = await handler(request)
            if response.status < 400 and _BODY not in request:
                # It answered without reading what its route declares: its checks and the
                # document's could differ. Herald's bug, said loudly; the answer stands, since
                # whatever the handler wrote is done (a 500 now would hide a success).
                log.error(
                    "%s %s answered without reading the body its route declares",
                    request.method, request.path,
                )
            return response

        return serve

    def register(self, router: web.UrlDispatcher) -> list[web.AbstractRoute]:
        if self.method == hdrs.METH_GET:
            return web.get(self.path, self._serve()).register(router)
        return web.route(self.method, self.path, self._serve()).register(router)


def _methods(route: Route) -> tuple[str, ...]:
    # aiohttp answers HEAD on every GET route (web.get's allow_head): the same declaration.
    return (route.method, hdrs.METH_HEAD) if route.method == hdrs.METH_GET else (route.method,)


class RouteTable:
    """The routes one app serves, by method and path template, in the order they were added."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}

    def add(self, app: web.Application, routes: Iterable[Route]) -> None:
        """Register routes with the app's router and remember their declarations."""
        for route in routes:
            for method in _methods(route):
                key = (method, route.path)
                if key in self._routes:
                    raise ValueError(f"{method} {route.path} is declared twice")
                self._routes[key] = route
            route.register(app.router)

    def __iter__(self) -> Iterator[Route]:
        """Each route once (not its HEAD twin)."""
        return (
            route for (method, _), route in self._routes.items() if method == route.method
        )

    def declared(self, method: str, path: str) -> Route | None:
        return self._routes.get((method, path))

    def matched(self, request: web.Request) -> Route | None:
        """The declaration of the route aiohttp matched for this request; None when it matched
        none (404, 405)."""
        route = request.match_info.route
        resource = route.resource
        if resource is None:
            return None
        return self._routes.get((route.method, resource.canonical))

    async def on_path(self, request: web.Request) -> list[Route]:
        """The routes declared on this request's path when aiohttp matched none because of
        the method (405): the path is served, just not with that method."""
        for resource in request.app.router.resources():
            match, allowed = await resource.resolve(request)
            if match is None and allowed:
                declared = (self._routes.get((m, resource.canonical)) for m in allowed)
                return [route for route in declared if route is not None]
        return []


ROUTES: Final = web.AppKey("herald_routes", RouteTable)
"""The app's route table (for what reads the routes after start-up, e.g. tests)."""
