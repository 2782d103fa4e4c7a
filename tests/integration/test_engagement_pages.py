"""Read and acknowledged in the browser: headless Chromium runs the shipped pages and service
worker against Herald over 127.0.0.1.

- The service worker's click report: `clicked()` (what `notificationclick` runs) posts the read,
  or the acknowledgement for the notification's acknowledge action, proving whose browser it is
  with the subscription Herald holds, and sets the app badge from the answer.
- The inbox page: the acknowledge button, reads made elsewhere arriving live, a recalled
  notification leaving the open page; all without a reload.
- The operator page: the funnel (reached → read → acknowledged).
"""

from __future__ import annotations

import json

from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.integration.test_live_pages import open_inbox, operator_link
from tests.integration.test_push_page import STATE
from tests.peers.chromium import Chromium
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting

POLICY = "I have read the policy"


async def person(herald: RunningHerald, connector: ConnectorStandIn, name: str) -> EmulatedUser:
    emulator = Emulator(herald, connector.url)
    user = emulator.user(name)
    assert await emulator.join(user) in (200, 201)
    return user


async def notify(
    herald: RunningHerald, nid: str, users: list[EmulatedUser], **fields: object
) -> None:
    code, body = await herald.post_event(
        {"id": nid, "type": "hr.policy", "title": f"Policy {nid}",
         "recipients": {"users": [u.key for u in users]}, **fields}
    )
    assert code == 202, body
    await herald.wait_status(nid)


async def entry(herald: RunningHerald, user: EmulatedUser, nid: str) -> dict[str, object]:
    token = herald.herald.links.issue(user.key, "inbox")
    code, body = await herald.request(
        "GET", "/api/inbox", headers={"Authorization": f"Bearer {token}"}, auth=False
    )
    assert code == 200, body
    [item] = [i for i in body["items"] if i["id"] == nid]
    return dict(item)


async def test_the_service_worker_reports_a_click_and_an_acknowledge_action(
    herald: RunningHerald,
    connector: ConnectorStandIn,
    chromium: Chromium,
    push_service: WebPushTesting,
) -> None:
    ada = await person(herald, connector, "Ada")
    sub = await push_service.subscribe(herald.herald.vapid.public_key)
    token = herald.herald.links.issue(ada.key, "webpush")
    code, _ = await herald.request(
        "POST", "/api/push/subscriptions",
        json={"subscription": sub.to_json(), "token": token}, auth=False,
    )
    assert code == 201
    await notify(herald, "w-1", [ada])
    await notify(herald, "w-2", [ada], acknowledge={"text": POLICY})
    await notify(herald, "w-3", [ada])

    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/push/")
    await page.wait_for(STATE)
    worker = await chromium.service_worker("/push/sw.js")
    # What the consent page remembered when it subscribed (headless Chromium has no push
    # service, so the worker proves the browser with this, as after a restart).
    await worker.evaluate(
        "(async () => { const c = await caches.open('herald-push'); await c.put("
        "'/push/subscription.json', new Response(JSON.stringify("
        f"{{endpoint: {json.dumps(sub.endpoint)}, auth: {json.dumps(sub.auth)}}}))); }})()"
    )
    # A click on the notification (its body, no action): read, and the link opened.
    status = await worker.evaluate("self.herald.clicked({id: 'w-1', url: '/push/'}, '')")
    assert status == 200
    read = await entry(herald, ada, "w-1")
    assert read["read"] is True and read["readVia"] == "webpush"
    # Its acknowledge action: acknowledged (and so read), once.
    status = await worker.evaluate("self.herald.clicked({id: 'w-2'}, 'acknowledge')")
    assert status == 200
    acked = await entry(herald, ada, "w-2")
    assert acked["acknowledged"] is True and acked["readVia"] == "webpush"
    assert await worker.evaluate("self.herald.clicked({id: 'w-2'}, 'acknowledge')") == 200
    # Another person's notification, or an unknown one: refused, nothing marked.
    assert await worker.evaluate("self.herald.clicked({id: 'nope'}, 'acknowledge')") == 404
    assert (await entry(herald, ada, "w-3"))["read"] is False


async def test_the_inbox_page_acknowledges_and_follows_reads_and_recalls_live(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    ada = await person(herald, connector, "Ada")
    await notify(herald, "p-1", [ada], acknowledge={"text": POLICY})
    await notify(herald, "p-2", [ada])
    await notify(herald, "p-3", [ada])
    page = await open_inbox(chromium, herald, herald.herald.links.issue(ada.key, "inbox"))
    assert await page.evaluate("document.getElementById('unread').textContent") == "3"

    button = "document.querySelector('li[data-id=\"p-1\"] button.acknowledge')"
    assert await page.evaluate(f"{button}.textContent") == POLICY
    await page.evaluate(f"{button}.click()", gesture=True)
    await page.wait_for(
        "document.querySelector('li[data-id=\"p-1\"]').dataset.acknowledged === 'true'"
    )
    assert "Acknowledged" in await page.evaluate(
        "document.querySelector('li[data-id=\"p-1\"] .acknowledged').textContent"
    )
    acked = await entry(herald, ada, "p-1")
    assert acked["acknowledged"] is True and acked["readVia"] == "inbox"

    # Read on the phone: the open page shows it read at once.
    code, _ = await herald.request(
        "POST", "/api/notifications/p-2/read", json={"userId": ada.key}
    )
    assert code == 200
    await page.wait_for("document.querySelector('li[data-id=\"p-2\"]').dataset.read === 'true'")
    # Recalled by its sender: it leaves the open page.
    code, _ = await herald.request("DELETE", "/api/notifications/p-3")
    assert code == 200
    await page.wait_for("document.querySelector('li[data-id=\"p-3\"]') === null")
    await page.wait_for("document.body.dataset.unread === '0'")
    assert await page.evaluate("window.heraldTestMarker") == "first load"


async def test_the_operator_page_shows_the_funnel(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    users = [await person(herald, connector, name) for name in ("Ada", "Grace", "Lin", "Alan")]
    await notify(herald, "f-1", users, acknowledge={"text": POLICY})
    for user in users[:2]:
        code, _ = await herald.request(
            "POST", "/api/notifications/f-1/acknowledge", json={"userId": user.key}
        )
        assert code == 200
    code, _ = await herald.request(
        "POST", "/api/notifications/f-1/read", json={"userId": users[2].key}
    )
    assert code == 200

    page = await chromium.new_page()
    await page.navigate(await operator_link(herald, "f-1"))
    await page.wait_for("document.querySelectorAll('#funnel-steps li').length === 3")
    steps = await page.evaluate(
        "[...document.querySelectorAll('#funnel-steps li')]"
        ".map((li) => [li.dataset.step, li.dataset.count])"
    )
    assert steps == [["delivered", "4"], ["read", "3"], ["acknowledged", "2"]]
    assert "api: 3" in await page.evaluate("document.getElementById('funnel-via').textContent")
    # The funnel over time: reads drawn on the rate chart, from the timeline's buckets.
    await page.wait_for("document.querySelector('#chart polyline.read') !== null")
    code, timeline = await herald.request("GET", "/api/notifications/f-1/timeline")
    assert code == 200
    assert sum(b["read"] for b in timeline["buckets"]) == 3
    assert sum(b["acknowledged"] for b in timeline["buckets"]) == 2
