"""Who may register or remove a browser subscription, and what counts as a subscription.

Only the person the bot's link token names (or a backend with an API key, or the browser
itself proving the old subscription's secret): a forged, expired, other-purpose or
other-person token is refused, and nothing is stored on any refusal.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from api.link_tokens import LinkTokens, load_or_create_secret
from tests.conftest import HeraldFactory
from tests.harness import API_KEY, EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import BrowserSubscription, WebPushTesting

SUBSCRIPTIONS = "/api/push/subscriptions"


async def setup(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> tuple[EmulatedUser, EmulatedUser, BrowserSubscription]:
    ada, grace = emulator.user("Ada"), emulator.user("Grace")
    for user in (ada, grace):
        assert await emulator.join(user) in (200, 201)
    return ada, grace, await push_service.subscribe(herald.herald.vapid.public_key)


def token_for(herald: RunningHerald, user: EmulatedUser, purpose: str = "webpush") -> str:
    return herald.herald.links.issue(user.key, purpose)


async def post(herald: RunningHerald, body: Any, *, key: bool = False) -> tuple[int, Any]:
    return await herald.request("POST", SUBSCRIPTIONS, json=body, auth=key)


async def stored(herald: RunningHerald) -> int:
    row = await herald.herald.db.fetchone("SELECT COUNT(*) FROM push_subscriptions")
    assert row is not None
    return int(row[0])


def tampered(token: str) -> str:
    """The same token with another user put in its payload (the signature kept)."""
    header, body, signature = token.split(".")
    claims = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(b"emulator:", b"x")
    forged = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_forged_expired_and_misused_tokens_are_refused_and_nothing_is_stored(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, grace, sub = await setup(herald, emulator, push_service)
    secret = load_or_create_secret("", herald.data_dir)
    an_hour_ago = LinkTokens(secret, 900, clock=lambda: time.time() - 3600)
    another_key = LinkTokens(b"not-heralds-secret-0123456789abc", 900)
    good = token_for(herald, ada)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("tampered payload", {"token": tampered(good)}, 401, "invalid_token"),
        (
            "signed by another key",
            {"token": another_key.issue(ada.key, "webpush")},
            401,
            "invalid_token",
        ),
        ("expired", {"token": an_hour_ago.issue(ada.key, "webpush")}, 401, "invalid_token"),
        ("another purpose", {"token": token_for(herald, ada, "devices")}, 401, "invalid_token"),
        ("not a token", {"token": "hello"}, 401, "invalid_token"),
        ("Ada's token, for Grace", {"token": good, "userId": grace.key}, 403, "forbidden"),
        ("no credentials", {}, 401, "unauthorized"),
        ("a userId without a key", {"userId": ada.key}, 401, "unauthorized"),
    ]
    for why, proof, status, code in cases:
        answer, body = await post(herald, {"subscription": sub.to_json(), **proof})
        assert (answer, body["error"]["code"]) == (status, code), why
    assert await stored(herald) == 0

    # The same token for its own user works: the refusals were about the token, not the rest.
    answer, body = await post(
        herald, {"subscription": sub.to_json(), "token": good, "userId": ada.key}
    )
    assert (answer, body["userId"]) == (201, ada.key)


async def test_backends_register_with_an_api_key_and_an_explicit_user(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, _, sub = await setup(herald, emulator, push_service)
    answer, body = await post(herald, {"subscription": sub.to_json()}, key=True)
    assert (answer, body["error"]["field"]) == (400, "userId")
    answer, body = await post(herald, {"subscription": sub.to_json(), "userId": "nobody"}, key=True)
    assert answer == 404
    answer, body = await herald.request(
        "POST",
        SUBSCRIPTIONS,
        json={"subscription": sub.to_json(), "userId": ada.key},
        headers={"Authorization": "Bearer not-the-key"},
        auth=False,
    )
    assert answer == 401
    assert await stored(herald) == 0
    answer, body = await post(herald, {"subscription": sub.to_json(), "userId": ada.key}, key=True)
    assert (answer, body["userId"]) == (201, ada.key)


def _with(sub: BrowserSubscription, **changes: Any) -> dict[str, Any]:
    document = sub.to_json()
    keys = changes.pop("keys", {})
    if keys is not None:
        keys = {**document["keys"], **keys}
    return {**document, "keys": keys, **changes}


P256_NOT_ON_CURVE = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()
SIXTEEN = base64.urlsafe_b64encode(b"0123456789abcdef").rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("http off loopback", {"endpoint": "http://push.example.com/send/1"}),
        ("not http", {"endpoint": "ftp://127.0.0.1/send/1"}),
        ("relative", {"endpoint": "/send/1"}),
        ("user info", {"endpoint": "https://user:pw@push.example.com/send/1"}),
        ("bad port", {"endpoint": "https://push.example.com:99999/send/1"}),
        ("no endpoint", {"endpoint": None}),
        ("p256dh too short", {"keys": {"p256dh": SIXTEEN}}),
        ("p256dh not on P-256", {"keys": {"p256dh": P256_NOT_ON_CURVE}}),
        ("p256dh not base64url", {"keys": {"p256dh": "B+" + "A" * 85}}),
        ("auth 15 bytes", {"keys": {"auth": SIXTEEN[:-2]}}),
        ("auth non-canonical", {"keys": {"auth": SIXTEEN[:-1] + "h"}}),
        ("expirationTime a string", {"expirationTime": "2030-01-01"}),
        ("expirationTime negative", {"expirationTime": -1}),
        ("keys missing", {"keys": None}),
    ],
)
async def test_bad_subscription_json_is_400(
    herald: RunningHerald,
    emulator: Emulator,
    push_service: WebPushTesting,
    why: str,
    change: dict[str, Any],
) -> None:
    ada, _, sub = await setup(herald, emulator, push_service)
    subscription = _with(sub, **change)
    token = token_for(herald, ada)
    answer, body = await post(herald, {"subscription": subscription, "token": token})
    assert answer == 400, (why, body)
    assert body["error"]["field"].startswith("subscription"), body
    assert await stored(herald) == 0


async def test_bad_bodies_are_400_or_415(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, _, sub = await setup(herald, emulator, push_service)
    token = token_for(herald, ada)
    for body, status in (
        ([sub.to_json()], 400),
        ({"subscription": sub.to_json(), "token": token, "extra": 1}, 400),
        ({"token": token}, 400),
        (
            {
                "subscription": sub.to_json(),
                "token": token,
                "previous": {"endpoint": sub.endpoint, "auth": sub.auth},
            },
            400,
        ),
    ):
        answer, _ = await post(herald, body)
        assert answer == status, body
    answer, _ = await herald.request(
        "POST",
        SUBSCRIPTIONS,
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        auth=False,
    )
    assert answer == 400
    answer, _ = await herald.request(
        "POST", SUBSCRIPTIONS, data=b"{}", headers={"Content-Type": "text/plain"}, auth=False
    )
    assert answer == 415
    assert await stored(herald) == 0


async def test_http_endpoints_are_taken_on_loopback_only(
    herald_factory: HeraldFactory, connector: ConnectorStandIn, push_service: WebPushTesting
) -> None:
    herald = await herald_factory(
        WEBPUSH_ALLOWED_HOSTS="example.com,localhost:8080,127.0.0.1:*,[::1]:8080"
    )
    emulator = Emulator(herald, connector.url)
    ada, _, sub = await setup(herald, emulator, push_service)
    assert sub.endpoint.startswith("http://127.0.0.1:")  # web-push-testing's
    for endpoint in (
        "https://push.example.com/send/abc",
        "http://localhost:8080/x",
        "http://[::1]:8080/x",
    ):
        answer, body = await post(
            herald, {"subscription": _with(sub, endpoint=endpoint), "token": token_for(herald, ada)}
        )
        assert answer == 201, (endpoint, body)


async def test_people_remove_only_their_own_subscriptions(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, grace, sub = await setup(herald, emulator, push_service)
    answer, _ = await post(herald, {"subscription": sub.to_json(), "token": token_for(herald, ada)})
    assert answer == 201

    async def delete(body: dict[str, Any], key: bool = False) -> int:
        status, _ = await herald.request("DELETE", SUBSCRIPTIONS, json=body, auth=key)
        return status

    endpoint = sub.endpoint
    assert await delete({"endpoint": endpoint, "token": token_for(herald, grace)}) == 404
    assert (
        await delete({"endpoint": endpoint, "token": token_for(herald, ada), "userId": grace.key})
        == 403
    )
    assert await delete({"endpoint": endpoint, "token": "forged.token"}) == 401
    assert await delete({"endpoint": endpoint, "auth": SIXTEEN}) == 401  # not its secret
    assert await delete({"endpoint": endpoint}) == 401  # no credentials at all
    assert await delete({"endpoint": endpoint, "userId": grace.key}, key=True) == 404
    assert await stored(herald) == 1

    assert await delete({"endpoint": endpoint, "token": token_for(herald, ada)}) == 204
    assert await stored(herald) == 0
    assert await delete({"endpoint": endpoint, "token": token_for(herald, ada)}) == 404

    for proof in ({"auth": sub.auth}, {}):  # the page's own "turn off", and a backend
        await post(herald, {"subscription": sub.to_json(), "token": token_for(herald, ada)})
        assert await delete({"endpoint": endpoint, **proof}, key=not proof) == 204
        assert await stored(herald) == 0


async def test_listing_needs_an_api_key_and_never_shows_keys(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, _, sub = await setup(herald, emulator, push_service)
    await post(herald, {"subscription": sub.to_json(), "token": token_for(herald, ada)})
    status, body = await herald.request("GET", f"{SUBSCRIPTIONS}?userId={ada.key}", auth=False)
    assert status == 401
    status, body = await herald.request(
        "GET",
        f"{SUBSCRIPTIONS}?userId={ada.key}",
        headers={"Authorization": f"Bearer {API_KEY}x"},
        auth=False,
    )
    assert status == 401
    status, body = await herald.request("GET", SUBSCRIPTIONS)
    assert status == 400
    status, body = await herald.request("GET", f"{SUBSCRIPTIONS}?userId=nobody")
    assert status == 404
    status, body = await herald.request("GET", f"{SUBSCRIPTIONS}?userId={ada.key}")
    assert status == 200
    [item] = body["items"]
    assert set(item) == {
        "id",
        "userId",
        "endpoint",
        "expirationTime",
        "userAgent",
        "createdAt",
        "updatedAt",
    }
    assert sub.auth not in str(body) and sub.p256dh not in str(body)


async def test_only_allowed_push_services_are_taken(
    herald_factory: HeraldFactory, connector: ConnectorStandIn, push_service: WebPushTesting
) -> None:
    herald = await herald_factory(
        WEBPUSH_ALLOWED_HOSTS="push.example.com,127.0.0.1,other.example.com:8443"
    )
    emulator = Emulator(herald, connector.url)
    ada, _, sub = await setup(herald, emulator, push_service)
    for endpoint, allowed in [
        ("https://push.example.com/send/1", True),
        ("https://eu.push.example.com/send/2", True),  # a subdomain of an allowed host
        ("https://push.example.com:443/send/3", True),  # its default port, spelt out
        ("https://other.example.com:8443/send/4", True),  # the port the list names
        ("https://push.example.com.evil.test/send/5", False),
        ("https://internal.corp/admin", False),
        ("http://localhost:9/x", False),  # loopback, but not on the list
        # Issue 11 (6): any port of an allowed host was taken (another service on that host).
        ("https://push.example.com:8443/send/6", False),
        ("https://push.example.com:22/send/7", False),
        ("http://127.0.0.1:6379/x", False),  # an allowed host, but not on port 80
        ("https://other.example.com/send/8", False),  # only on the port named
    ]:
        answer, body = await post(
            herald, {"subscription": _with(sub, endpoint=endpoint), "token": token_for(herald, ada)}
        )
        if allowed:
            assert answer == 201, (endpoint, body)
        else:
            assert answer == 400, (endpoint, body)
            assert body["error"]["field"] == "subscription.endpoint"
    assert await stored(herald) == 4
