"""The consent page and its service worker in a real browser: headless Chromium.

The page is loaded from Herald over 127.0.0.1 (a secure context, so service workers and the
Push API are available), and driven as a person would: the browser's notification permission
is set as their answer would set it, the button is clicked, and the page's status is read.

Chromium cannot reach a real push service here, so where a step needs one, web-push-testing
stands in for the browser's binding to its push service: `PushManager.subscribe()` is
replaced, before the page's scripts run, by a call to web-push-testing's /subscribe (with the
key the page passes), which returns a real subscription (endpoint and keys) that Herald then
encrypts and signs for. Everything else runs as shipped: the page's code, the service worker,
Herald's API; pushes web-push-testing decrypted are handed to the service worker with
DevTools' ServiceWorker.deliverPushMessage, and the notifications it shows are read back.
"""

from __future__ import annotations

import json
import time
from typing import Any

from api.link_tokens import LinkTokens, load_or_create_secret
from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.chromium import Chromium, Page
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting

SUBSCRIPTIONS = "/api/push/subscriptions"
STATE = "document.body.dataset.state !== 'loading' && document.body.dataset.busy !== 'true'"

# The browser's push service binding, played by web-push-testing (see the module docstring).
PUSH_SERVICE_STAND_IN = """
(() => {
  const SERVICE = %(service)s;
  const STORE = 'herald.test.subscription';
  const encode = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  const decode = (text) => Uint8Array.from(
    atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)).buffer;
  function current() {
    const saved = localStorage.getItem(STORE);
    if (!saved) return null;
    const data = JSON.parse(saved);
    return {
      endpoint: data.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: decode(data.serverKey) },
      toJSON: () => ({ endpoint: data.endpoint, expirationTime: null, keys: data.keys }),
      unsubscribe: async () => { localStorage.removeItem(STORE); return true; },
    };
  }
  PushManager.prototype.getSubscription = async function () { return current(); };
  PushManager.prototype.subscribe = async function (options) {
    const serverKey = encode(options.applicationServerKey);
    const response = await fetch(SERVICE + '/subscribe', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ applicationServerKey: serverKey, userVisibleOnly: 'true' }),
    });
    const { data } = await response.json();
    localStorage.setItem(STORE, JSON.stringify({ ...data, serverKey }));
    return current();
  };
})();
"""


async def ada(herald: RunningHerald, connector: ConnectorStandIn) -> EmulatedUser:
    emulator = Emulator(herald, connector.url)
    user = emulator.user("Ada")
    assert await emulator.join(user) in (200, 201)
    return user


def link(herald: RunningHerald, user: EmulatedUser) -> str:
    return f"{herald.url}/push/?token={herald.herald.links.issue(user.key, 'webpush')}"


async def state_of(page: Page) -> dict[str, Any]:
    await page.wait_for(STATE)
    result: dict[str, Any] = await page.evaluate(
        """({
          state: document.body.dataset.state,
          status: document.getElementById('state').textContent,
          message: document.getElementById('message').hidden
            ? '' : document.getElementById('message').textContent,
          enable: !document.getElementById('enable').hidden,
          enableDisabled: document.getElementById('enable').disabled,
          disable: !document.getElementById('disable').hidden,
          search: location.search,
        })"""
    )
    return result


async def subscriptions_of(herald: RunningHerald, user: EmulatedUser) -> list[dict[str, Any]]:
    code, body = await herald.request("GET", f"{SUBSCRIPTIONS}?userId={user.key}")
    assert code == 200, body
    return list(body["items"])


async def test_the_page_loads_registers_its_service_worker_and_asks(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    user = await ada(herald, connector)
    page = await chromium.new_page()
    await page.navigate(link(herald, user))
    shown = await state_of(page)
    assert shown["state"] == "default"
    assert shown["status"].startswith("off")
    assert (shown["enable"], shown["enableDisabled"], shown["disable"]) == (True, False, False)
    assert shown["search"] == ""  # the token left the address bar
    registration = await page.evaluate(
        """(async () => {
          const registration = await navigator.serviceWorker.ready;
          return { scope: registration.scope, script: registration.active.scriptURL };
        })()"""
    )
    assert registration == {"scope": f"{herald.url}/push/", "script": f"{herald.url}/push/sw.js"}
    # The page explains what will be sent before anything is asked.
    text = await page.evaluate("document.querySelector('main').innerText")
    assert "title, a short text" in text and "Only you get them" in text


async def test_blocked_notifications_are_shown_as_blocked(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    user = await ada(herald, connector)
    await chromium.grant(herald.url, "denied")
    page = await chromium.new_page()
    await page.navigate(link(herald, user))
    shown = await state_of(page)
    assert shown["state"] == "blocked"
    assert "site settings" in shown["message"]
    assert (shown["enable"], shown["disable"]) == (False, False)


async def test_a_browser_without_the_push_api_is_told_so(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    user = await ada(herald, connector)
    page = await chromium.new_page()
    await page.before_scripts("delete window.PushManager;")  # as in a browser without it
    await page.navigate(link(herald, user))
    shown = await state_of(page)
    assert shown["state"] == "unsupported"
    assert shown["status"].startswith("not supported")
    assert (shown["enable"], shown["disable"]) == (False, False)


async def test_allowed_but_without_a_valid_link_nothing_can_be_subscribed(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    user = await ada(herald, connector)
    await chromium.grant(herald.url)
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/push/")
    shown = await state_of(page)
    assert shown["state"] == "allowed"
    assert (shown["enable"], shown["enableDisabled"]) == (True, True)
    assert "browser on" in shown["message"]

    secret = load_or_create_secret("", herald.data_dir)
    stale = LinkTokens(secret, 900, clock=lambda: time.time() - 3600).issue(user.key, "webpush")
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/push/?token={stale}")
    shown = await state_of(page)
    assert shown["state"] == "allowed" and shown["enableDisabled"] is True
    assert "expired" in shown["message"]


async def test_subscribe_receive_and_unsubscribe_through_the_page(
    herald: RunningHerald,
    connector: ConnectorStandIn,
    chromium: Chromium,
    push_service: WebPushTesting,
) -> None:
    user = await ada(herald, connector)
    await chromium.grant(herald.url)
    page = await chromium.new_page()
    await page.send("Page.setBypassCSP", {"enabled": True})  # the stand-in calls another port
    await page.before_scripts(PUSH_SERVICE_STAND_IN % {"service": json.dumps(push_service.url)})
    await page.navigate(link(herald, user))
    assert (await state_of(page))["state"] == "allowed"

    await page.evaluate("document.getElementById('enable').click()", gesture=True)
    await page.wait_for("document.body.dataset.state === 'subscribed'")
    shown = await state_of(page)
    assert "Done" in shown["message"] and shown["disable"] is True
    [stored] = await subscriptions_of(herald, user)
    assert "HeadlessChrome" in (stored["userAgent"] or "")
    saved = await page.evaluate("JSON.parse(localStorage.getItem('herald.test.subscription'))")
    assert stored["endpoint"] == saved["endpoint"]
    # What the service worker will need after pushsubscriptionchange: endpoint and secret.
    remembered = await page.evaluate(
        """(async () => (await (await caches.open('herald-push'))
            .match('/push/subscription.json')).json())()"""
    )
    assert remembered == {"endpoint": saved["endpoint"], "auth": saved["keys"]["auth"]}

    # A notification goes out: encrypted by Herald, decrypted by the push service, shown by
    # the service worker.
    code, body = await herald.post_event(
        {
            "id": "case-4711",
            "type": "case.assigned",
            "title": "Case 4711 was assigned to you",
            "text": "Customer: Contoso.",
            "url": "https://crm.example.com/cases/4711",
            "severity": "error",
            "recipients": {"users": [user.key]},
        }
    )
    assert code == 202, body
    subscription = type("Handle", (), {"client_hash": saved["clientHash"]})()
    [payload] = await push_service.wait_notifications(subscription, 1)  # type: ignore[arg-type]
    await page.send("ServiceWorker.enable")  # reports the registrations it knows
    updated = await chromium.wait_event(
        "ServiceWorker.workerRegistrationUpdated",
        lambda params: any(
            r["scopeURL"] == f"{herald.url}/push/" and not r["isDeleted"]
            for r in params["registrations"]
        ),
    )
    [registration_id] = [
        r["registrationId"] for r in updated["registrations"] if r["scopeURL"].endswith("/push/")
    ]
    # DevTools reports the notification once it is displayed; asking the registration for its
    # notifications before that (polling) was measured to lose the push now and then.
    await page.send("BackgroundService.startObserving", {"service": "notifications"})
    await page.send(
        "BackgroundService.setRecording", {"shouldRecord": True, "service": "notifications"}
    )
    await page.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": herald.url, "registrationId": registration_id, "data": payload},
    )
    displayed = await chromium.wait_event(
        "BackgroundService.backgroundServiceEventReceived",
        lambda params: params["backgroundServiceEvent"]["eventName"] == "Notification displayed",
    )
    assert displayed["backgroundServiceEvent"]["instanceId"] == "case-4711"  # the tag
    shown_notifications = await page.evaluate(
        """(async () => {
          const registration = await navigator.serviceWorker.ready;
          const shown = await registration.getNotifications();
          return shown.map((n) => ({
            title: n.title, body: n.body, tag: n.tag, url: n.data.url,
            requireInteraction: n.requireInteraction,
          }));
        })()"""
    )
    assert shown_notifications == [
        {
            "title": "Case 4711 was assigned to you",
            "body": "Customer: Contoso.",
            "tag": "case-4711",
            "url": "https://crm.example.com/cases/4711",
            "requireInteraction": True,  # severity error: stays until dealt with
        }
    ]

    # Opened again from a new link, the page shows the state and keeps Herald in step.
    await page.navigate(link(herald, user))
    assert (await state_of(page))["state"] == "subscribed"
    assert len(await subscriptions_of(herald, user)) == 1

    await page.evaluate("document.getElementById('disable').click()", gesture=True)
    await page.wait_for("document.body.dataset.state === 'allowed'")
    shown = await state_of(page)
    assert "no longer receives" in shown["message"]
    assert await subscriptions_of(herald, user) == []


async def test_the_service_worker_re_registers_a_renewed_subscription(
    herald: RunningHerald,
    connector: ConnectorStandIn,
    chromium: Chromium,
    push_service: WebPushTesting,
) -> None:
    user = await ada(herald, connector)
    old = await push_service.subscribe(herald.herald.vapid.public_key)
    new = await push_service.subscribe(herald.herald.vapid.public_key)
    token = herald.herald.links.issue(user.key, "webpush")
    code, _ = await herald.request(
        "POST", SUBSCRIPTIONS, json={"subscription": old.to_json(), "token": token}, auth=False
    )
    assert code == 201
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/push/")
    await page.wait_for(STATE)
    worker = await chromium.service_worker("/push/sw.js")
    # pushsubscriptionchange, as Firefox fires it: the old subscription and the new one.
    status = await worker.evaluate(
        "self.herald.resubscribe("
        f"{{toJSON: () => ({json.dumps(old.to_json())})}}, "
        f"{{toJSON: () => ({json.dumps(new.to_json())})}})"
    )
    assert status == 201
    [stored] = await subscriptions_of(herald, user)
    assert stored["endpoint"] == new.endpoint  # the old one is gone, the owner kept

    # Without the old subscription (Chrome fires none), what the page remembered is used.
    newer = await push_service.subscribe(herald.herald.vapid.public_key)
    await worker.evaluate(
        "(async () => { const c = await caches.open('herald-push'); await c.put("
        "'/push/subscription.json', new Response(JSON.stringify("
        f"{{endpoint: {json.dumps(new.endpoint)}, auth: {json.dumps(new.auth)}}}))); }})()"
    )
    status = await worker.evaluate(
        f"self.herald.resubscribe(null, {{toJSON: () => ({json.dumps(newer.to_json())})}})"
    )
    assert status == 201
    assert [s["endpoint"] for s in await subscriptions_of(herald, user)] == [newer.endpoint]


async def test_the_page_is_served_with_headers_that_keep_the_token_to_itself(
    herald: RunningHerald,
) -> None:
    assert herald.http is not None
    async with herald.http.get(f"{herald.url}/push/?token=abc") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    async with herald.http.get(f"{herald.url}/push?token=abc", allow_redirects=False) as response:
        assert response.status == 308
        assert response.headers["Location"] == "/push/?token=abc"
    async with herald.http.get(f"{herald.url}/push/sw.js") as response:
        assert response.status == 200
        assert response.content_type == "text/javascript"
        assert "pushsubscriptionchange" in await response.text()
    async with herald.http.get(f"{herald.url}/push/nothing.js") as response:
        assert response.status == 404
