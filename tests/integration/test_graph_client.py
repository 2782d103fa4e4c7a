"""Herald's Graph client against the Entra ID and Graph stand-ins (TLS on loopback): msal's
client-credentials flow and its cache, certificate checking, retries and error translation.
And the stand-in itself: it refuses what Graph refuses (a wrong or late validation echo, a
lifetime past Outlook's maximum, a long clientState, a missing token)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web

from errors import SourceError, SourceNotFound, SourceUnavailable
from sources.graph import GraphClient, GraphConfig, MsalGraphTokens
from tests.integration.conftest import GraphPeers
from tests.peers.graph import MAX_EVENT_MINUTES, _Subscription


def config_for(peers: GraphPeers, **changes: object) -> GraphConfig:
    config = GraphConfig(
        tenant_id=peers.entra.tenant,
        client_id=peers.entra.client_id,
        client_secret=peers.entra.client_secret,
        authority_host=peers.entra.url,
        base_url=peers.graph.base,
        ca_file=peers.tls.cert_file,
    )
    return replace(config, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def client(graph_peers: GraphPeers) -> AsyncIterator[GraphClient]:
    config = config_for(graph_peers)
    graph = GraphClient(config, MsalGraphTokens(config), max_wait=2.0)
    await graph.open()
    yield graph
    await graph.aclose()


async def test_tokens_come_from_msal_once_and_only_from_the_stand_in(
    client: GraphClient, graph_peers: GraphPeers
) -> None:
    for _ in range(5):
        assert await client.list_subscriptions() == []
    token_requests = graph_peers.entra.token_requests
    assert len(token_requests) == 1  # msal's cache answered the rest
    body = token_requests[0].body
    assert body["grant_type"] == "client_credentials"
    assert body["scope"] == "https://graph.microsoft.com/.default"
    assert body["client_secret"] == "***"  # recorded masked; sent as configured
    paths = {r.path for r in graph_peers.entra.requests}
    assert paths == {
        f"/{graph_peers.entra.tenant}/v2.0/.well-known/openid-configuration",
        f"/{graph_peers.entra.tenant}/oauth2/v2.0/token",
    }


async def test_refused_credentials_are_a_source_error_without_the_secret(
    graph_peers: GraphPeers,
) -> None:
    for changes, code in (
        ({"client_secret": "wrong-secret"}, "invalid_client"),
        ({"client_id": "someone-else"}, "unauthorized_client"),
    ):
        config = config_for(graph_peers, **changes)
        graph = GraphClient(config, MsalGraphTokens(config))
        await graph.open()
        try:
            with pytest.raises(SourceError) as err:
                await graph.list_subscriptions()
        finally:
            await graph.aclose()
        assert err.value.code == code
        assert "wrong-secret" not in str(err.value)
        assert graph_peers.graph.requests == []  # never called Graph without a token


async def test_the_certificate_is_checked(graph_peers: GraphPeers) -> None:
    config = config_for(graph_peers, ca_file=None)  # the system's CAs: the stand-in is unknown
    graph = GraphClient(config, MsalGraphTokens(config))
    await graph.open()
    try:
        with pytest.raises(SourceUnavailable):
            await graph.list_subscriptions()
    finally:
        await graph.aclose()
    assert graph_peers.entra.requests == []


async def test_throttling_and_errors(client: GraphClient, graph_peers: GraphPeers) -> None:
    graph = graph_peers.graph
    graph.throttle(2, retry_after="0")
    assert await client.list_subscriptions() == []
    assert [r.status for r in graph.requests] == [429, 429, 200]
    graph.throttle(1, retry_after="60")  # longer than the client may wait inline
    with pytest.raises(SourceUnavailable) as unavailable:
        await client.list_subscriptions()
    assert (unavailable.value.after, unavailable.value.status) == (60.0, 429)
    graph.throttle(10, retry_after="0", status=503)
    with pytest.raises(SourceUnavailable):
        await client.list_subscriptions()  # gave up after its attempts
    graph.unthrottle()
    with pytest.raises(SourceNotFound):
        await client.renew_subscription("no-such-subscription", "2030-01-01T00:00:00Z")
    assert await client.delete_subscription("no-such-subscription") is False
    assert await client.get_event("6f1c2a4e-8a8b-4c55-9d0e-0123456789ab", "nope") is None
    with pytest.raises(SourceError, match="outside"):
        await client.call("GET", "https://graph.example.com/v1.0/subscriptions")
    graph_peers.entra.revoke_all()  # Graph no longer accepts the cached token
    with pytest.raises(SourceError) as err:
        await client.list_subscriptions()
    assert err.value.status == 401


async def test_list_follows_pages(client: GraphClient, graph_peers: GraphPeers) -> None:
    graph = graph_peers.graph
    graph.page_size = 2
    expires = datetime.fromtimestamp(graph_peers.clock.now() + 3600, UTC).isoformat()
    for i in range(5):
        graph.subscriptions[f"s{i}"] = _fake(f"s{i}", expires)
    listed = await client.list_subscriptions()
    assert sorted(s["id"] for s in listed) == [f"s{i}" for i in range(5)]
    assert all(s["clientState"] is None for s in listed)  # Graph never shows it back
    assert len(graph.calls("GET", "/subscriptions")) == 3


def _fake(subscription_id: str, expires: str) -> _Subscription:
    return _Subscription(
        id=subscription_id,
        resource="users/u/events",
        user_id="u",
        change_type="updated",
        notification_url="https://example.invalid/hook",
        lifecycle_url=None,
        client_state="secret",
        expires_at=datetime.fromisoformat(expires).timestamp(),
    )


# ---- the stand-in behaves like Graph


class _Receiver:
    """A notification URL on loopback whose answer to the validation request is scripted."""

    def __init__(self) -> None:
        self.answer = "echo"
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken", "")
        if self.answer == "late":
            await asyncio.sleep(1.0)
        if self.answer == "wrong":
            return web.Response(text=token + "x", content_type="text/plain")
        if self.answer == "json":
            return web.json_response(token)
        return web.Response(text=token, content_type="text/plain")

    async def __aenter__(self) -> _Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_stand_in_validates_like_graph(client: GraphClient, graph_peers: GraphPeers) -> None:
    graph = graph_peers.graph
    now = graph_peers.clock.now()

    def body(url: str, minutes: float = 60, client_state: str = "s" * 128) -> dict[str, object]:
        return {
            "changeType": "created,updated,deleted",
            "notificationUrl": url,
            "resource": "users/6f1c2a4e-8a8b-4c55-9d0e-0123456789ab/events",
            "expirationDateTime": datetime.fromtimestamp(now + minutes * 60, UTC).isoformat(),
            "clientState": client_state,
        }

    async with _Receiver() as receiver:
        created = await client.create_subscription(body(receiver.url, MAX_EVENT_MINUTES - 1))
        assert created["clientState"] == "s" * 128
        for answer, message in (
            ("wrong", "did not match"),
            ("json", "text/plain"),
            ("late", "timed out"),
        ):
            receiver.answer = answer
            graph.validation_timeout = 0.5
            with pytest.raises(SourceError, match=message):
                await client.create_subscription(body(receiver.url))
        receiver.answer = "echo"
        with pytest.raises(SourceError, match="4230 minutes"):
            await client.create_subscription(body(receiver.url, MAX_EVENT_MINUTES + 1))
        with pytest.raises(SourceError, match="128"):
            await client.create_subscription(body(receiver.url, client_state="s" * 129))
        with pytest.raises(SourceError, match="https"):
            await client.create_subscription(body("http://example.com/hook"))
    assert [s.id for s in graph.live()] == [created["id"]]
    async with httpx.AsyncClient(verify=graph_peers.tls.client_context()) as anonymous:
        response = await anonymous.get(f"{graph.base}/subscriptions")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
