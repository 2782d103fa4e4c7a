"""Web Push end to end against a real push service: web-push-testing (npm) on 127.0.0.1.

A browser is played by web-push-testing's /subscribe (an endpoint and RFC 8291 keys bound to
Herald's VAPID key, as pushManager.subscribe() gives them); the subscription is registered
through Herald's API with the link token the bot hands out; events are posted to Herald, and
what the push service *decrypted* is read back, with the headers each push carried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from delivery.webpush import DEFAULT_TTL_SECONDS, WebPushChannel, topic_for
from tests.conftest import HeraldFactory
from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn
from tests.peers.loopback import LoopbackServer
from tests.peers.webpush import BrowserSubscription, WebPushTesting

SUBSCRIPTIONS = "/api/push/subscriptions"


async def person(herald: RunningHerald, emulator: Emulator, name: str = "Ada") -> EmulatedUser:
    """Someone Herald knows (they opened a chat with the bot)."""
    user = emulator.user(name)
    assert await emulator.join(user) in (200, 201)
    return user


async def browser(herald: RunningHerald, push_service: WebPushTesting) -> BrowserSubscription:
    """A browser subscribed with Herald's VAPID key, as the consent page does it."""
    code, body = await herald.request("GET", "/api/push/vapid-public-key", auth=False)
    assert code == 200, body
    return await push_service.subscribe(body["publicKey"])


async def register(
    herald: RunningHerald, subscription: BrowserSubscription, user: EmulatedUser
) -> dict[str, Any]:
    """What the consent page posts, with the token of the bot's link for `user`."""
    token = herald.herald.links.issue(user.key, "webpush")
    code, body = await herald.request(
        "POST",
        SUBSCRIPTIONS,
        json={"subscription": subscription.to_json(), "token": token, "userAgent": "Firefox"},
        auth=False,
    )
    assert code == 201, body
    assert isinstance(body, dict)
    return body


async def subscriptions_of(herald: RunningHerald, user: EmulatedUser) -> list[dict[str, Any]]:
    code, body = await herald.request("GET", f"{SUBSCRIPTIONS}?userId={user.key}")
    assert code == 200, body
    return list(body["items"])


def event(user: EmulatedUser, **fields: Any) -> dict[str, Any]:
    return {
        "type": "case.assigned",
        "title": "Case 4711 was assigned to you",
        "text": "Customer: Contoso. Priority: high.",
        "recipients": {"users": [user.key]},
        **fields,
    }


async def deliver(herald: RunningHerald, body: dict[str, Any]) -> dict[str, Any]:
    code, accepted = await herald.post_event(body)
    assert code == 202, accepted
    return await herald.wait_status(accepted["id"])


async def test_a_subscribed_browser_gets_the_decrypted_notification(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    answer = await register(herald, sub, ada)
    assert answer["userId"] == ada.key
    assert answer["endpoint"] == sub.endpoint
    assert answer["userAgent"] == "Firefox"
    assert "keys" not in answer and sub.auth not in json.dumps(answer)  # secrets stay inside

    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    status = await deliver(
        herald,
        event(
            ada,
            id="case-4711",
            severity="warning",
            url="https://crm.example.com/cases/4711",
            icon="https://crm.example.com/icon.png",
            data={"caseId": 4711},
            urgency="high",
            expiresAt=expires,
        ),
    )
    assert status["channels"]["webpush"]["delivered"] == 1
    [message] = await push_service.wait_notifications(sub, 1)
    assert json.loads(message) == {
        "id": "case-4711",
        "title": "Case 4711 was assigned to you",
        "text": "Customer: Contoso. Priority: high.",
        "icon": "https://crm.example.com/icon.png",
        "url": "https://crm.example.com/cases/4711",
        "severity": "warning",
        "type": "case.assigned",
        "data": {"caseId": 4711},
        "unread": 1,  # the person's unread count: the app badge
    }
    [request] = await push_service.requests(sub)
    assert 3590 <= int(request["ttl"]) <= 3600  # until expiresAt
    assert request["urgency"] == "high"
    assert request["topic"] == topic_for("case-4711")
    assert len(request["topic"]) == 32
    assert request["contentEncoding"] == "aes128gcm"
    assert request["contentType"] == "application/octet-stream"
    assert request["authorization"] == "vapid"  # RFC 8292 scheme; the JWT was verified


async def test_ttl_defaults_and_no_urgency_unless_the_event_has_one(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    await register(herald, sub, ada)
    await deliver(herald, event(ada))
    [message] = await push_service.wait_notifications(sub, 1)
    payload = json.loads(message)
    assert set(payload) == {"id", "title", "text", "severity", "type", "unread"}  # no nulls
    assert payload["severity"] == "info"
    [request] = await push_service.requests(sub)
    assert request["ttl"] == str(DEFAULT_TTL_SECONDS)
    assert request["urgency"] is None


async def test_every_browser_of_a_person_gets_one_push_and_nobody_else_does(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada, grace = await person(herald, emulator, "Ada"), await person(herald, emulator, "Grace")
    laptop, phone = await browser(herald, push_service), await browser(herald, push_service)
    graces = await browser(herald, push_service)
    await register(herald, laptop, ada)
    await register(herald, phone, ada)
    await register(herald, graces, grace)
    assert len(await subscriptions_of(herald, ada)) == 2

    status = await deliver(herald, event(ada))
    assert status["channels"]["webpush"]["delivered"] == 2
    assert len(await push_service.wait_notifications(laptop, 1)) == 1
    assert len(await push_service.wait_notifications(phone, 1)) == 1
    assert await push_service.notifications(graces) == []

    status = await deliver(herald, {**event(ada), "recipients": {"all": True}})
    assert status["channels"]["webpush"]["delivered"] == 3
    for sub in (laptop, phone, graces):
        assert len(await push_service.wait_notifications(sub, 1)) >= 1
    assert len(await push_service.notifications(laptop)) == 2  # one each time, never twice


async def test_a_progress_update_goes_out_under_the_same_topic(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    await register(herald, sub, ada)
    await deliver(herald, event(ada, id="build-77", title="Build 77: 10%"))
    await push_service.wait_notifications(sub, 1)
    code, body = await herald.post_event(event(ada, id="build-77", title="Build 77: 90%"))
    assert (code, body["outcome"]) == (202, "updated")
    messages = await push_service.wait_notifications(sub, 2)
    assert [json.loads(m)["title"] for m in messages] == ["Build 77: 10%", "Build 77: 90%"]
    assert {json.loads(m)["id"] for m in messages} == {"build-77"}  # the worker's tag
    topics = {r["topic"] for r in await push_service.requests(sub)}
    assert topics == {topic_for("build-77")}  # the push service replaces a pending one


async def test_a_gone_subscription_is_deleted_and_counted_as_a_dead_target(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    alive, gone = await browser(herald, push_service), await browser(herald, push_service)
    await register(herald, alive, ada)
    await register(herald, gone, ada)
    await deliver(herald, event(ada, id="first"))
    await push_service.expire(gone)  # the person revoked it in the browser: 410 from now on

    status = await deliver(herald, event(ada, id="second"))
    assert status["channels"]["webpush"]["delivered"] == 1
    assert status["channels"]["webpush"]["deadTargets"] == 1
    assert [s["endpoint"] for s in await subscriptions_of(herald, ada)] == [alive.endpoint]

    status = await deliver(herald, event(ada, id="third"))
    assert status["channels"]["webpush"] == {
        **status["channels"]["webpush"],
        "delivered": 1,
        "deadTargets": 0,
    }
    assert len(await push_service.requests(gone)) == 2  # never tried again after the 410
    assert len(await push_service.wait_notifications(alive, 3)) == 3


async def test_throttling_and_server_errors_are_retried_after_retry_after(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    await register(herald, sub, ada)
    await push_service.fail(sub, 429, times=1, retry_after="1")
    code, _ = await herald.post_event(event(ada, id="throttled"))
    assert code == 202
    status = await herald.wait_status("throttled", timeout=15)
    assert status["channels"]["webpush"]["delivered"] == 1
    first, second = await push_service.requests(sub)
    assert second["at"] - first["at"] >= 950  # Retry-After: 1 was honoured

    await push_service.fail(sub, 503, times=2)  # no Retry-After: the worker's backoff
    status = await deliver(herald, event(ada, id="unavailable"))
    assert status["channels"]["webpush"]["delivered"] == 1
    assert len(await push_service.requests(sub)) == 2 + 3
    assert [json.loads(m)["id"] for m in await push_service.notifications(sub)] == [
        "throttled",
        "unavailable",
    ]


async def test_an_oversize_payload_is_shortened_never_failed(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    await register(herald, sub, ada)
    long_text = "Zürich grüßt 🌍 " * 250  # 4,000 characters, about 5,000 UTF-8 bytes
    await deliver(herald, event(ada, id="long", text=long_text[:4000], data={"k": "v"}))
    await deliver(herald, event(ada, id="huge-data", text="Short.", data={"blob": "x" * 6000}))
    long, huge = await push_service.wait_notifications(sub, 2)

    payload = json.loads(long)
    assert len(long.encode()) <= WebPushChannel.max_payload_bytes
    assert len(long.encode()) > WebPushChannel.max_payload_bytes - 8  # as much as fits
    assert payload["text"].endswith("…") and long_text.startswith(payload["text"][:-1])
    assert payload["data"] == {"k": "v"}  # the text gave way, not the data
    assert payload["title"] == "Case 4711 was assigned to you"

    payload = json.loads(huge)
    assert "data" not in payload and payload["text"] == "Short."  # data dropped, text kept
    for request in await push_service.requests(sub):
        assert request["contentLength"] <= 4096  # RFC 8291 §4, as encrypted on the wire


async def test_another_person_s_link_cannot_take_an_endpoint_but_a_backend_can_move_it(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    # Issue 11 (5): Grace's link token re-posting Ada's endpoint moved it to Grace (201), and
    # Ada's notifications went to Grace from then on. Now 403, and Ada keeps it.
    ada, grace = await person(herald, emulator, "Ada"), await person(herald, emulator, "Grace")
    shared = await browser(herald, push_service)  # one browser profile, two people in turn
    first = await register(herald, shared, ada)
    code, body = await herald.request(
        "POST",
        SUBSCRIPTIONS,
        json={"subscription": shared.to_json(),
              "token": herald.herald.links.issue(grace.key, "webpush")},
        auth=False,
    )
    assert code == 403, body
    assert body["error"]["field"] == "subscription.endpoint"
    assert [s["userId"] for s in await subscriptions_of(herald, ada)] == [ada.key]
    assert await subscriptions_of(herald, grace) == []
    status = await deliver(herald, event(ada, id="still-ada-s"))
    assert status["channels"]["webpush"]["delivered"] == 1

    # A backend (API key) may move it; from then on it is Grace's.
    code, second = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": shared.to_json(), "userId": grace.key}
    )
    assert code == 201, second
    assert first["id"] == second["id"] and second["userId"] == grace.key
    assert await subscriptions_of(herald, ada) == []
    assert [s["userId"] for s in await subscriptions_of(herald, grace)] == [grace.key]

    status = await deliver(herald, event(ada, id="for-ada"))
    assert "webpush" not in status["channels"]
    await deliver(herald, event(grace, id="for-grace"))
    assert [json.loads(m)["id"] for m in await push_service.wait_notifications(shared, 2)] == [
        "still-ada-s", "for-grace"
    ]


async def test_the_service_worker_renews_with_the_old_subscriptions_secret(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    ada = await person(herald, emulator)
    old, new = await browser(herald, push_service), await browser(herald, push_service)
    await register(herald, old, ada)
    wrong = {"endpoint": old.endpoint, "auth": new.auth}
    code, body = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": new.to_json(), "previous": wrong}, auth=False
    )
    assert (code, body["error"]["code"]) == (401, "invalid_proof")
    assert [s["endpoint"] for s in await subscriptions_of(herald, ada)] == [old.endpoint]

    proof = {"endpoint": old.endpoint, "auth": old.auth}
    code, body = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": new.to_json(), "previous": proof}, auth=False
    )
    assert code == 201, body
    assert body["userId"] == ada.key  # the owner carries over; no token was needed
    assert [s["endpoint"] for s in await subscriptions_of(herald, ada)] == [new.endpoint]
    await deliver(herald, event(ada, id="after-renewal"))
    assert len(await push_service.wait_notifications(new, 1)) == 1
    assert await push_service.notifications(old) == []


async def test_vapid_keys_are_generated_once_and_kept(
    herald_factory: HeraldFactory, push_service: WebPushTesting
) -> None:
    herald = await herald_factory()
    code, body = await herald.request("GET", "/api/push/vapid-public-key", auth=False)
    assert code == 200
    key = body["publicKey"]
    assert key == herald.herald.vapid.public_key and len(key) == 87 and key.startswith("B")
    key_file = herald.data_dir / "vapid-private.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    await herald.restart()
    assert herald.herald.vapid.public_key == key  # subscriptions survive a restart

    configured = await herald_factory(WEBPUSH_VAPID_PRIVATE_KEY=key_file.read_text())
    assert configured.herald.vapid.public_key == key
    assert not (configured.data_dir / "vapid-private.pem").exists()


async def test_delivery_reaches_a_person_registered_by_a_backend(
    herald: RunningHerald,
    emulator: Emulator,
    push_service: WebPushTesting,
    connector: ConnectorStandIn,
) -> None:
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    code, body = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": sub.to_json(), "userId": ada.key}
    )
    assert code == 201, body
    code, body = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": sub.to_json(), "userId": ada.key}
    )
    assert code == 200, body  # the same again: updated, still one
    await deliver(herald, event(ada))
    assert len(await push_service.wait_notifications(sub, 1)) == 1


class Counter(LoopbackServer):
    """A server that answers every POST like a push service (201) and counts them."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.hits = 0

    def make_app(self) -> web.Application:
        async def push(request: web.Request) -> web.Response:
            await request.read()
            self.hits += 1
            return web.Response(status=201)

        app = web.Application()
        app.router.add_post("/{tail:.*}", push)
        return app


class Redirector(Counter):
    """A push service (on an allowed host) that answers 307 to somewhere else."""

    def __init__(self, host: str, to: str) -> None:
        super().__init__(host)
        self.to = to

    def make_app(self) -> web.Application:
        async def push(request: web.Request) -> web.Response:
            await request.read()
            self.hits += 1
            raise web.HTTPTemporaryRedirect(self.to + request.path)

        app = web.Application()
        app.router.add_post("/{tail:.*}", push)
        return app


async def test_a_redirect_from_an_allowed_push_service_is_not_followed(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    # Issue 11 (6): an allowed push host answering 307 to a host that is not allowed got the
    # encrypted push (and the VAPID token) re-posted there, and it counted as delivered.
    ada = await person(herald, emulator)
    keys = await browser(herald, push_service)  # real RFC 8291 keys, for a made-up endpoint
    async with Counter("127.0.0.2") as elsewhere, Redirector("127.0.0.1", elsewhere.url) as service:
        endpoint = f"{service.url}/push/ada"
        subscription = {**keys.to_json(), "endpoint": endpoint}
        code, body = await herald.request(
            "POST", SUBSCRIPTIONS, json={"subscription": subscription, "userId": ada.key}
        )
        assert code == 201, body
        status = await deliver(herald, event(ada, id="redirected"))
        assert service.hits == 1
        assert elsewhere.hits == 0  # never followed
    assert status["channels"]["webpush"]["delivered"] == 0
    assert status["channels"]["webpush"]["failed"] == 1
    [reason] = status["reasons"]
    assert "307" in reason and "redirect" in reason


async def test_a_subscription_no_longer_allowed_is_not_sent_to(
    herald: RunningHerald, emulator: Emulator, push_service: WebPushTesting
) -> None:
    # Issue 11 (6): the allow-list was checked only at registration. Checked again at send time:
    # after the operator narrows WEBPUSH_ALLOWED_HOSTS, the old subscription gets nothing.
    ada = await person(herald, emulator)
    sub = await browser(herald, push_service)
    await register(herald, sub, ada)
    port = sub.endpoint.split("/")[2].rsplit(":", 1)[1]
    herald.env["WEBPUSH_ALLOWED_HOSTS"] = "127.0.0.1:1"  # the same host, another port only
    await herald.restart()
    status = await deliver(herald, event(ada, id="after-the-change"))
    assert status["channels"]["webpush"]["failed"] == 1
    [reason] = status["reasons"]
    assert f"port {port}" in reason and "WEBPUSH_ALLOWED_HOSTS" in reason
    assert await push_service.requests(sub) == []
