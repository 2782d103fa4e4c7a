"""Each route's request body is declared once, on the route (api/routing.py's `Body`).

The route parses and validates it, the handler receives the model (`body(request, Model)`),
and the OpenAPI document's requestBody is generated from the same declaration, so what the
document promises and what the handler checks cannot drift. A body the handler reads itself
(`RawBody`) is named below, so adding one is a visible change of this test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict

from api.http import errors_middleware, json_response
from api.routing import BACKEND, PUBLIC, REF, ROUTES, Body, RawBody, Route, RouteTable, body
from tests.harness import RunningHerald

RAW_BODIES = {
    ("POST", "/api/messages"),
    ("POST", "/api/graph/notifications"),
    ("POST", "/api/graph/lifecycle"),
}
"""Routes whose handler reads the body itself: the bot's activities (botbuilder's Activity,
its token checked before the body is read) and Microsoft Graph's batches (own size limit,
lenient reading)."""


async def test_every_documented_request_body_is_the_routes_declaration(
    herald: RunningHerald,
) -> None:
    assert herald.app is not None
    table = herald.app[ROUTES]
    status, document = await herald.request("GET", "/openapi.json", auth=False)
    assert status == 200
    validated = 0
    for route in table:
        key = (route.method, route.path)
        operation = document["paths"].get(route.path, {}).get(route.method.lower())
        if operation is None:
            assert route.body is None or route.doc is None, key
            continue
        if "requestBody" not in operation:
            assert route.body is None, key
            continue
        assert route.body is not None, key
        if isinstance(route.body, RawBody):
            assert key in RAW_BODIES, key
            continue
        assert key not in RAW_BODIES, key
        validated += 1
        request_body = operation["requestBody"]
        assert request_body["required"] is route.body.required, key
        schema = request_body["content"]["application/json"]["schema"]
        assert schema == {"$ref": REF.format(model=route.body.model.__name__)}, key
        assert route.body.model.__name__ in document["components"]["schemas"], key
    declared_raw = {
        (route.method, route.path) for route in table if isinstance(route.body, RawBody)
    }
    assert declared_raw == RAW_BODIES
    assert validated >= 10


async def test_a_handlers_earlier_checks_still_answer_first(herald: RunningHerald) -> None:
    # The body is parsed when the handler asks for it: a caller without credentials, or a
    # user that does not exist, hears that, not what is wrong with the body.
    for method, path, auth, status in [
        ("POST", "/api/devices", False, 401),
        ("PUT", "/api/users/nobody/subscriptions/calendar", True, 404),
        ("PUT", "/api/users/nobody/preferences", True, 404),
    ]:
        got, answer = await herald.request(
            method, path, data=b"[1]", headers={"Content-Type": "application/json"}, auth=auth
        )
        assert got == status, (method, path, answer)


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


@pytest.mark.parametrize(
    "doc",
    [
        {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
        {"requestBody": {"required": True}, "responses": {}},
    ],
)
def test_the_table_refuses_a_request_body_declared_only_in_the_operation(
    doc: dict[str, Any],
) -> None:
    table = RouteTable()
    with pytest.raises(ValueError, match="declare the request body"):
        table.add(web.Application(), [Route("POST", "/x", _ok, BACKEND, doc=doc)])
    assert list(table) == []


def test_a_get_declares_no_body() -> None:
    with pytest.raises(ValueError, match="takes no body"):
        Route("GET", "/x", _ok, PUBLIC, body=Body(_Greeting))


def test_an_optional_body_reads_absent_as_empty() -> None:
    with pytest.raises(ValueError, match="absent"):
        Body(_Greeting, required=False)


class _Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class _Other(BaseModel):
    name: str



async def _greet(request: web.Request) -> web.StreamResponse:
    greeting = await body(request, _Greeting)
    again = await body(request, _Greeting)  # parsed once: the same object
    return json_response({"hello": greeting.name, "same": again is greeting})


async def _wrong_model(request: web.Request) -> web.StreamResponse:
    await body(request, _Other)
    return web.Response(status=204)


async def _unread(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


async def _undeclared(request: web.Request) -> web.StreamResponse:
    await body(request, _Greeting)
    return web.Response(status=204)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64)
    table = RouteTable()
    declared = Body(_Greeting, not_object="a greeting is a JSON object")
    table.add(
        app,
        [
            Route("POST", "/greet", _greet, PUBLIC, body=declared),
            Route("POST", "/optional", _greet, PUBLIC, body=Body(_Greeting, absent_is_empty=True)),
            Route("POST", "/wrong-model", _wrong_model, PUBLIC, body=declared),
            Route("POST", "/unread", _unread, PUBLIC, body=declared),
            Route("POST", "/undeclared", _undeclared, PUBLIC),
        ],
    )
    async with TestClient(TestServer(app)) as client:
        yield client


async def _post(
    client: TestClient[web.Request, web.Application],
    path: str,
    data: bytes | None,
    content_type: str | None = "application/json",
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type} if content_type else {}
    async with client.post(path, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_the_route_hands_the_handler_its_validated_body(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert await _post(client, "/greet", b'{"name": "Ada"}') == (
        200, {"hello": "Ada", "same": True}
    )


@pytest.mark.parametrize(
    ("path", "data", "content_type", "status", "error"),
    [
        ("/greet", b"[1]", "application/json", 400,
         {"code": "invalid_body", "message": "a greeting is a JSON object", "field": None}),
        ("/greet", b"{}", "application/json", 400,
         {"code": "missing_field", "message": "Field required", "field": "name"}),
        ("/greet", b'{"name": "Ada", "x": 1}', "application/json", 400,
         {"code": "unknown_field", "message": "Extra inputs are not permitted", "field": "x"}),
        ("/greet", b"{", "application/json", 400, None),
        ("/greet", b'{"name": "Ada"}', "text/plain", 415, None),
        ("/greet", b'{"name": "' + b"x" * 100 + b'"}', "application/json", 413, None),
        ("/greet", None, None, 415, None),
        # Without a body, a route whose body may be absent validates `{}`.
        ("/optional", None, None, 400,
         {"code": "missing_field", "message": "Field required", "field": "name"}),
    ],
)
async def test_the_route_answers_a_bad_body_as_the_api_does(
    client: TestClient[web.Request, web.Application],
    path: str,
    data: bytes | None,
    content_type: str | None,
    status: int,
    error: dict[str, Any] | None,
) -> None:
    got, answer = await _post(client, path, data, content_type)
    assert got == status, answer
    if error is not None:
        assert answer["error"] == error
    else:
        assert answer["error"]["code"] in ("invalid_json", "unsupported_media_type",
                                           "body_too_large")


async def test_a_handler_that_answers_without_reading_its_declared_body_is_logged(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    async with client.post(
        "/unread", data=b'{"name": "Ada"}', headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 204  # what it did is done: no 500 hiding a success
    assert "POST /unread answered without reading the body its route declares" in caplog.text


@pytest.mark.parametrize("path", ["/wrong-model", "/undeclared"])
async def test_a_handler_at_odds_with_its_declaration_is_a_500(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    status, answer = await _post(client, path, b'{"name": "Ada"}')
    assert (status, answer["error"]["code"]) == (500, "internal_error")
