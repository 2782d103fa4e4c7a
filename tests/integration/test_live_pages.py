"""The live pages in a real browser (headless Chromium): /inbox/ for a person and
/notifications/{id} for an operator.

Both pages are loaded from Herald over 127.0.0.1 exactly as shipped and read back through the
DOM a person sees. The inbox must show a notification posted to the API while the page is open,
without a reload (the page's own marker survives); the operator page must follow a delivery as
it goes from retrying to delivered and draw its rate chart, opened by a signed link or an API key.
"""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import HeraldFactory
from tests.harness import API_KEY, EmulatedUser, Emulator, RunningHerald
from tests.integration.links import renewed_until_now, signer
from tests.peers.chromium import Chromium, Page
from tests.peers.connector import ConnectorStandIn

INBOX_READY = (
    "document.body.dataset.state === 'ready' && document.body.dataset.connection === 'live'"
)
ITEMS = """[...document.querySelectorAll('#items li')].map((li) => ({
  id: li.dataset.id, read: li.dataset.read === 'true', severity: li.dataset.severity,
  icon: li.querySelector('.icon').getAttribute('aria-label'),
  title: li.querySelector('.title').textContent,
}))"""


async def people(
    herald: RunningHerald, connector: ConnectorStandIn, *names: str
) -> list[EmulatedUser]:
    emulator = Emulator(herald, connector.url)
    users = [emulator.user(name) for name in names]
    for user in users:
        assert await emulator.join(user) in (200, 201)
    await connector.wait_for(len(users))  # the welcomes: the references are stored
    return users


async def post(herald: RunningHerald, nid: str, users: list[EmulatedUser], **fields: Any) -> None:
    event = {"id": nid, "type": "case.assigned", "title": f"Case {nid}", **fields}
    code, body = await herald.post_event({**event, "recipients": {"users": [u.key for u in users]}})
    assert code == 202, body


async def inbox_of(herald: RunningHerald, token: str) -> dict[str, Any]:
    code, body = await herald.request(
        "GET", "/api/inbox", headers={"Authorization": f"Bearer {token}"}
    )
    assert code == 200, body
    assert isinstance(body, dict)
    return body


async def open_inbox(chromium: Chromium, herald: RunningHerald, token: str) -> Page:
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/inbox/?token={token}")
    await page.wait_for(INBOX_READY)
    # Set once per document: still there later means the page was never reloaded.
    await page.evaluate("window.heraldTestMarker = 'first load'")
    return page


async def test_a_notification_posted_to_the_api_appears_on_the_open_inbox_without_reload(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    ada, grace = await people(herald, connector, "Ada", "Grace")
    await post(herald, "n1", [ada], severity="info")
    await post(herald, "n2", [ada], severity="warning", text="Review by Friday")
    await post(herald, "g1", [grace])
    for nid in ("n1", "n2", "g1"):
        await herald.wait_status(nid)
    token = herald.herald.links.issue(ada.key, "inbox")
    code, _ = await herald.request(
        "POST", "/api/inbox/n1/read", headers={"Authorization": f"Bearer {token}"}
    )
    assert code == 200

    page = await open_inbox(chromium, herald, token)
    assert await page.evaluate("location.search") == ""  # the token left the address bar
    shown = await page.evaluate(ITEMS)
    assert [(i["id"], i["read"], i["severity"]) for i in shown] == [
        ("n2", False, "warning"),  # unread first
        ("n1", True, "info"),
    ]  # and nothing of Grace's
    assert shown[0]["icon"] == "Warning"
    assert await page.evaluate("document.getElementById('unread').textContent") == "1"

    await post(herald, "n3", [ada], severity="error", title="Payroll run failed")
    await page.wait_for("document.querySelector('#items li[data-id=\"n3\"]') !== null")
    assert await page.evaluate("window.heraldTestMarker") == "first load"
    shown = await page.evaluate(ITEMS)
    assert [(i["id"], i["read"]) for i in shown] == [("n3", False), ("n2", False), ("n1", True)]
    assert shown[0]["severity"] == "error" and shown[0]["icon"] == "Error"
    assert "Payroll run failed" in shown[0]["title"]
    colour = await page.evaluate(
        "getComputedStyle(document.querySelector('li[data-id=\"n3\"] .icon')).backgroundColor"
    )
    other = await page.evaluate(
        "getComputedStyle(document.querySelector('li[data-id=\"n2\"] .icon')).backgroundColor"
    )
    assert colour != other  # severity is shown with colour, not only a word
    assert await page.evaluate("document.getElementById('unread').textContent") == "2"

    # Marking one read on the page marks it read in Herald.
    await page.evaluate(
        "document.querySelector('li[data-id=\"n3\"] button.mark-read').click()", gesture=True
    )
    await page.wait_for("document.querySelector('li[data-id=\"n3\"]').dataset.read === 'true'")
    entries = {i["id"]: i["read"] for i in (await inbox_of(herald, token))["items"]}
    assert entries == {"n1": True, "n2": False, "n3": True}

    # Read elsewhere (the bot's "mark all read" goes through the same store): the page follows.
    await page.evaluate("document.getElementById('read-all').click()", gesture=True)
    await page.wait_for("document.body.dataset.unread === '0'")
    body = await inbox_of(herald, token)
    assert body["unread"] == 0
    assert await page.evaluate("document.getElementById('read-all').disabled") is True
    assert await page.evaluate("window.heraldTestMarker") == "first load"


async def test_the_inbox_page_without_a_valid_link_says_how_to_get_one(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    (ada,) = await people(herald, connector, "Ada")
    await post(herald, "n1", [ada])
    await herald.wait_status("n1")
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/inbox/")
    await page.wait_for("document.body.dataset.state === 'no-token'")
    assert "link the Herald bot sends you" in await page.evaluate(
        "document.getElementById('message').textContent"
    )

    # Signed for another purpose (the push page's): refused, nothing shown.
    wrong = herald.herald.links.issue(ada.key, "webpush")
    await page.navigate(f"{herald.url}/inbox/?token={wrong}")
    await page.wait_for("document.body.dataset.state === 'expired'")
    assert await page.evaluate("document.querySelectorAll('#items li').length") == 0
    assert await page.evaluate("document.body.dataset.connection") == "closed"


async def operator_link(herald: RunningHerald, nid: str) -> str:
    """The page's address (on this test's port: HERALD_PUBLIC_URL is left at its default)."""
    code, body = await herald.request("POST", f"/api/notifications/{nid}/link")
    assert code == 200, body
    assert body["url"] == f"http://localhost:3978/notifications/{nid}?token={body['token']}"
    return f"{herald.url}/notifications/{nid}?token={body['token']}"


BARS = """Object.fromEntries([...document.querySelectorAll('#progress .channel')].map((row) => [
  row.dataset.channel,
  Object.fromEntries([...row.querySelectorAll('.bar span')].map((s) => [s.className, s.title])),
]))"""


async def test_the_operator_page_follows_a_delivery_from_retrying_to_delivered(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    users = await people(herald, connector, "Ada", "Grace", "Alan")
    # Every first send is throttled for a few seconds: the page sees them retrying first.
    connector.fail(None, 429, retry_after=4, times=len(users))
    await post(herald, "outage-1", users, title="Mail is down")
    link = await operator_link(herald, "outage-1")

    page = await chromium.new_page()
    await page.navigate(link)
    await page.wait_for("document.body.dataset.state === 'live'")
    assert await page.evaluate("location.search") == ""  # the token left the address bar
    assert await page.evaluate("document.getElementById('title').textContent") == "Mail is down"
    await page.wait_for("document.querySelector('#total .bar .retrying') !== null")
    assert (await page.evaluate(BARS))["all"]["retrying"] == "retrying: 3"

    await page.wait_for("document.body.dataset.state === 'completed'", timeout=30)
    bars = await page.evaluate(BARS)
    assert bars["all"] == {"delivered": "delivered: 3"}
    assert set(bars) >= {"all", "conversation"} and bars["conversation"] == bars["all"]
    assert "3 / 3 done" in await page.evaluate("document.getElementById('total').textContent")
    # The rate chart: at least one bar of deliveries, on the timeline the API gives.
    await page.wait_for("document.querySelectorAll('#chart svg rect.ok').length > 0")
    code, timeline = await herald.request("GET", "/api/notifications/outage-1/timeline")
    assert code == 200
    assert sum(b["delivered"] for b in timeline["buckets"]) == 3
    assert await page.evaluate("document.getElementById('chart').dataset.buckets") == str(
        len(timeline["buckets"])
    )
    # The report the download button fetches, with the link's token (kept in this tab only).
    report = await page.evaluate(
        """(async () => {
          const token = sessionStorage.getItem('herald.operator.token.outage-1');
          const response = await fetch('/api/notifications/outage-1/report.csv',
            { headers: { Authorization: 'Bearer ' + token } });
          return { status: response.status, text: await response.text() };
        })()"""
    )
    assert report["status"] == 200
    lines = report["text"].strip().splitlines()
    assert len(lines) == 1 + len(users)
    assert all(",delivered," in line for line in lines[1:])


async def test_an_operator_link_opens_one_notification_and_nothing_else(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    users = await people(herald, connector, "Ada")
    await post(herald, "one", users)
    await post(herald, "two", users)
    await herald.wait_status("one")
    link = await operator_link(herald, "one")
    token = link.rsplit("token=", 1)[1]
    auth = {"Authorization": f"Bearer {token}"}

    for path in ("/api/notifications/one", "/api/notifications/one/timeline",
                 "/api/notifications/one/report.csv"):
        code, _ = await herald.request("GET", path, headers=auth)
        assert code == 200, path
    code, renewed = await herald.request("POST", "/api/notifications/one/link", headers=auth)
    assert code == 200 and renewed["token"] != ""

    for method, path in (
        ("GET", "/api/notifications/two"),
        ("GET", "/api/notifications/two/report.csv"),
        ("POST", "/api/notifications/two/link"),
        ("GET", f"/api/users/{users[0].key}/preferences"),
    ):
        code, body = await herald.request(method, path, headers=auth)
        assert code in (401, 403), (method, path, code, body)
    code, body = await herald.request(
        "POST", "/api/notifications", headers=auth, json={"id": "x", "type": "t", "title": "t",
                                                           "recipients": {"all": True}}
    )
    assert code in (401, 403), body

    code, body = await herald.request("GET", "/api/notifications/one/timeline?bucket=0")
    assert code == 400 and body["error"]["field"] == "bucket"
    code, body = await herald.request("POST", "/api/notifications/nope/link")
    assert code == 404


async def test_the_operator_page_asks_for_an_api_key_without_a_link(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    users = await people(herald, connector, "Ada")
    await post(herald, "keyed", users, title="Quarterly numbers")
    await herald.wait_status("keyed")
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/notifications/keyed")
    await page.wait_for("document.body.dataset.state === 'needs-key'")
    assert await page.evaluate("document.getElementById('key-form').hidden") is False

    async def submit(key: str) -> None:
        await page.evaluate(
            f"""(() => {{
              document.getElementById('api-key').value = {key!r};
              document.getElementById('key-form').requestSubmit();
            }})()""",
            gesture=True,
        )

    await submit("not-the-key")
    await page.wait_for(
        "document.getElementById('message').textContent.includes('was not accepted')"
    )
    await submit(API_KEY)
    await page.wait_for("document.body.dataset.state === 'completed'")
    assert await page.evaluate("document.getElementById('title').textContent") == (
        "Quarterly numbers"
    )


async def test_an_operator_link_is_renewed_only_up_to_its_absolute_lifetime(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    # Issue 11 (4): renewing an operator link with itself gave a fresh grant every time.
    herald = await herald_factory(HERALD_LINK_MAX_HOURS="1")
    users = await people(herald, connector, "Ada")
    await post(herald, "one", users)
    purpose = "operator:one"
    granted = time.time() - 55 * 60
    token = renewed_until_now(
        herald, signer(herald, granted).issue("one", purpose), purpose, granted
    )
    auth = {"Authorization": f"Bearer {token}"}
    code, renewed = await herald.request("POST", "/api/notifications/one/link", headers=auth)
    assert code == 200, renewed
    claims = herald.herald.links.verify_claims(renewed["token"], purpose)
    assert claims.granted_at == int(granted) and claims.expires_at <= granted + 3600

    # With the API key, a new link: a new grant.
    code, fresh = await herald.request("POST", "/api/notifications/one/link")
    assert code == 200
    assert herald.herald.links.verify_claims(fresh["token"], purpose).granted_at >= time.time() - 5

    old = time.time() - 2 * 3600
    token = renewed_until_now(
        herald, signer(herald, old, 24).issue("one", purpose), purpose, old, max_hours=24
    )
    code, body = await herald.request(
        "POST", "/api/notifications/one/link", headers={"Authorization": f"Bearer {token}"},
        auth=False,
    )
    assert code == 401, body


DISPLAYED = "getComputedStyle(document.getElementById({0!r})).display !== 'none'"


async def test_the_operator_form_is_shown_only_when_a_key_is_needed(
    herald: RunningHerald, connector: ConnectorStandIn, chromium: Chromium
) -> None:
    users = await people(herald, connector, "Ada")
    await post(herald, "form-state", users, title="Quarterly numbers")
    await herald.wait_status("form-state")

    # Opened with a valid link: the status, never the key form (`hidden` beats the CSS).
    page = await chromium.new_page()
    await page.navigate(await operator_link(herald, "form-state"))
    await page.wait_for("document.body.dataset.state === 'completed'")
    assert await page.evaluate(DISPLAYED.format("key-form")) is False
    assert await page.evaluate(DISPLAYED.format("progress")) is True

    # Without a key: the form is visible, and the page says what it is instead of "Loading…".
    bare = await chromium.new_page()
    await bare.navigate(f"{herald.url}/notifications/form-state")
    await bare.wait_for("document.body.dataset.state === 'needs-key'")
    assert await bare.evaluate(DISPLAYED.format("key-form")) is True
    assert await bare.evaluate(DISPLAYED.format("progress")) is False
    title = await bare.evaluate("document.getElementById('title').textContent")
    assert title == "Delivery of notification form-state"
    assert await bare.evaluate("document.getElementById('status').textContent") == (
        "API key needed"
    )
