"""The route table is the one place that says who may call a route (api/routing.py).

The app's router and the table agree route for route, every route declares its `Auth`, and
the declarations are pinned here: a route that becomes public or self-authenticated has to
be named below, so a change of who may call it is a visible change of this test. Each
backend route is then called without credentials over a real socket and must answer 401
before its handler runs.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from api.routing import ROUTES, Access, Auth, RouteTable
from tests.harness import RunningHerald

PUBLIC_API = {
    ("POST", "/api/messages"),
    ("POST", "/api/graph/notifications"),
    ("POST", "/api/graph/lifecycle"),
}
"""Routes under /api/ anyone may call: the handler checks the caller (Bot Framework token,
Microsoft Graph's clientState)."""

SELF_AUTHENTICATED = {
    ("GET", "/api/push/vapid-public-key"),
    ("GET", "/api/push/subscriptions"),
    ("POST", "/api/push/subscriptions"),
    ("DELETE", "/api/push/subscriptions"),
    ("POST", "/api/push/read"),
    ("POST", "/api/push/acknowledge"),
    ("GET", "/api/devices"),
    ("POST", "/api/devices"),
    ("GET", "/api/devices/{installationId}"),
    ("DELETE", "/api/devices/{installationId}"),
    ("GET", "/api/inbox"),
    ("GET", "/api/inbox/events"),
    ("POST", "/api/inbox/read-all"),
    ("POST", "/api/inbox/token"),
    ("POST", "/api/inbox/{id}/read"),
    ("POST", "/api/inbox/{id}/acknowledge"),
}

LINKED = {
    ("GET", "/api/notifications/{id}"): "operator:abc",
    ("GET", "/api/notifications/{id}/timeline"): "operator:abc",
    ("GET", "/api/notifications/{id}/report.csv"): "operator:abc",
    ("POST", "/api/notifications/{id}/link"): "operator:abc",
    ("POST", "/api/notifications/{id}/read"): "devices",
    ("POST", "/api/notifications/{id}/acknowledge"): "devices",
}
"""Backend routes that also take a link token, and the purpose it needs (for id `abc`)."""


def _table(herald: RunningHerald) -> tuple[web.Application, RouteTable]:
    assert herald.app is not None
    return herald.app, herald.app[ROUTES]


def _router_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


async def test_the_router_serves_exactly_the_declared_routes(herald: RunningHerald) -> None:
    app, table = _table(herald)
    declared = {(route.method, route.path) for route in table}
    heads = {("HEAD", path) for method, path in declared if method == "GET"}
    assert _router_routes(app) == declared | heads


async def test_every_route_declares_who_may_call_it(herald: RunningHerald) -> None:
    _, table = _table(herald)
    api_routes = [route for route in table if route.path.startswith("/api/")]
    assert len(api_routes) > 30
    for route in table:
        assert isinstance(route.auth, Auth), (route.method, route.path)
        if not route.path.startswith("/api/"):
            # Pages, assets, health and the spec are open; they hold nothing but code.
            assert route.auth.access is Access.PUBLIC, (route.method, route.path)
    by_key = {(route.method, route.path): route for route in api_routes}
    public = {key for key, route in by_key.items() if route.auth.access is Access.PUBLIC}
    assert public == PUBLIC_API
    self_authenticated = {
        key for key, route in by_key.items() if route.auth.access is Access.SELF_AUTHENTICATED
    }
    assert self_authenticated == SELF_AUTHENTICATED
    linked = {key: route for key, route in by_key.items() if route.auth.link is not None}
    assert set(linked) == set(LINKED)
    for key, route in linked.items():
        assert route.auth.access is Access.BACKEND
        method, template = key
        request = make_mocked_request(
            method, template.replace("{id}", "abc"), match_info={"id": "abc"}
        )
        assert route.auth.link is not None
        assert route.auth.link(request) == LINKED[key]


async def test_backend_routes_refuse_a_caller_without_credentials(herald: RunningHerald) -> None:
    _, table = _table(herald)
    backend = [
        route for route in table
        if route.path.startswith("/api/") and route.auth.access is Access.BACKEND
    ]
    for route in backend:
        path = route.path.replace("{id}", "abc").replace("{installationId}", "abc")
        status, body = await herald.request(route.method, path, auth=False)
        assert status == 401, (route.method, route.path, status, body)
        assert body["error"]["code"] == "unauthorized"


async def test_a_path_no_route_serves(herald: RunningHerald) -> None:
    # Under /api/ it needs a backend (and says nothing about which routes exist) ...
    status, _ = await herald.request("GET", "/api/nothing-here", auth=False)
    assert status == 401
    status, body = await herald.request("GET", "/api/nothing-here")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, _ = await herald.request("PATCH", "/api/notifications", auth=False)
    assert status == 401
    status, _ = await herald.request("PATCH", "/api/notifications")
    assert status == 405
    # Another method on a path anyone (or a self-authenticating caller) may call: 405.
    status, _ = await herald.request("GET", "/api/messages", auth=False)
    assert status == 405
    status, _ = await herald.request("PUT", "/api/devices", auth=False)
    assert status == 405
    status, _ = await herald.request("PATCH", "/api/push/subscriptions", auth=False)
    assert status == 405
    # ... elsewhere it is simply not there.
    status, _ = await herald.request("GET", "/nothing-here", auth=False)
    assert status == 404


async def test_the_document_describes_every_api_route_as_declared(herald: RunningHerald) -> None:
    _, table = _table(herald)
    status, document = await herald.request("GET", "/openapi.json", auth=False)
    assert status == 200
    for route in table:
        if not route.path.startswith("/api/"):
            continue
        operation = document["paths"][route.path][route.method.lower()]
        security = operation.get("security", document["security"])
        if route.auth.access is Access.PUBLIC:
            assert security == [], (route.method, route.path)
        if route.auth.access is Access.BACKEND:
            # A backend may always call it, and hears 401 without credentials.
            assert {"apiKey": []} in security, (route.method, route.path)
            assert "401" in operation["responses"], (route.method, route.path)
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
    }
    assert documented == {(route.method, route.path) for route in table if route.doc}
