"""GET /openapi.json: an OpenAPI 3.1 document of Herald's HTTP API, built from the route table.

Each route's declaration (api/routing.py) carries its operation and its request body; the schemas
come from the pydantic models those name, the same models the routes validate and answer with,
so the document cannot drift from the code; schemathesis checks the running server against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.devices import document_device_schemas
from api.graph import document_graph_schemas
from api.http import json_response
from api.inbox import document_inbox_schemas
from api.notifications import document_event_schemas
from api.preferences import document_preferences_schemas
from api.push import document_push_schemas
from api.routing import (
    PUBLIC,
    REF,
    Access,
    Route,
    RouteTable,
    Schema,
)

__all__ = ["OpenApi", "build_document"]

_REFINEMENTS: Final[tuple[Callable[[dict[str, Any]], None], ...]] = (
    document_event_schemas,
    document_preferences_schemas,
    document_push_schemas,
    document_graph_schemas,
    document_device_schemas,
    document_inbox_schemas,
)
"""What the handlers check beyond what pydantic's JSON Schema says (closed alternatives,
patterns), applied to the generated schemas."""

_SECURITY_SCHEMES: Final[dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key of this Herald, or (when HERALD_AUTH_TENANT_ID "
        "and HERALD_AUTH_AUDIENCE are set) an Entra ID access token of that tenant "
        "for that audience carrying the app role HERALD_AUTH_ROLE: 401 for a token "
        "that is not valid, 403 for one without the role, 503 while the tenant's "
        "signing keys cannot be read.",
    },
    "operatorLink": {
        "type": "http",
        "scheme": "bearer",
        "description": "A link token for one notification's operator page (POST "
        "/api/notifications/{id}/link): reads that notification's status, timeline and report.",
    },
    "inboxLink": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token of the inbox link the bot gives one person (the `inbox` "
        "command): that person's inbox only. An API key names nobody and is refused.",
    },
}


def _resolve(value: Any, modes: dict[type[BaseModel], JsonSchemaMode], request: bool) -> Any:
    """The operation with each `Schema(Model)` replaced by a reference to its component, and
    the models noted (a model some handler accepts is published as what it accepts)."""
    if isinstance(value, Schema):
        if request or value.model not in modes:
            modes[value.model] = "validation" if request else "serialization"
        return {"$ref": REF.format(model=value.model.__name__)}
    if isinstance(value, dict):
        return {
            key: _resolve(item, modes, request or key == "requestBody")
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_resolve(item, modes, request) for item in value]
    return value


def build_document(routes: Iterable[Route], version: str = "0.1.0") -> dict[str, Any]:
    modes: dict[type[BaseModel], JsonSchemaMode] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        declared = route.operation()
        if declared is None:
            continue
        operation = _resolve(declared, modes, request=False)
        if route.auth.access is Access.PUBLIC:
            # Who may call it is the route's declaration, not the operation's to repeat.
            operation["security"] = []
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    _, defs = models_json_schema(list(modes.items()), ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})
    for refine in _REFINEMENTS:
        refine(schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": version,
            "description": "Enterprise notifications delivered by a Bot Framework bot, "
            "mobile push and Web Push.",
        },
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
        "security": [{"apiKey": []}],
        "paths": paths,
    }


class OpenApi:
    """Serves the document, built once."""

    def __init__(self, routes: RouteTable, version: str = "0.1.0") -> None:
        self._routes = routes
        self._version = version
        self._document: dict[str, Any] | None = None

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/openapi.json",
                self.get,
                PUBLIC,
                doc={
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["openapi", "info", "paths"],
                                    }
                                }
                            },
                        }
                    },
                },
            ),
        ]

    async def get(self, request: web.Request) -> web.Response:
        # Built on first use: by then every route is in the table.
        if self._document is None:
            self._document = build_document(self._routes, self._version)
        return json_response(self._document)
