"""The inbox API behind /inbox/: the link token as the only credential, unread first, marking
read, token renewal, and the server-sent events stream (snapshot, live entries woken by the
in-process doorbell, reconnect with Last-Event-ID, heartbeats, the store poll that carries
writes made by another instance, the end of a stream at its token's expiry)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from api.inbox import InboxApi
from api.inbox_feed import InboxFeed
from api.link_tokens import LinkTokens, load_or_create_secret
from delivery.outbox_sqlite import SqliteDeliveryQueue
from notifications.event import StoredEvent
from storage.sqlite import SqliteDatabase
from storage.sqlite_notifications import SqliteInboxStore, SqliteNotificationStore
from tests.conftest import HeraldFactory
from tests.harness import API_KEY, EmulatedUser, Emulator, RunningHerald
from tests.integration.links import renewed_until_now, signer
from tests.integration.sse import EventReader
from tests.peers.connector import ConnectorStandIn


def inbox_token(herald: RunningHerald, user: EmulatedUser, purpose: str = "inbox") -> str:
    return herald.herald.links.issue(user.key, purpose)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def people(herald: RunningHerald, connector: ConnectorStandIn) -> list[EmulatedUser]:
    emulator = Emulator(herald, connector.url)
    users = [emulator.user("Ada"), emulator.user("Grace")]
    for user in users:
        assert await emulator.join(user) in (200, 201)
    return users


async def notify(herald: RunningHerald, nid: str, user: EmulatedUser, **fields: Any) -> None:
    event = {"id": nid, "type": "case.assigned", "title": f"Case {nid}", **fields}
    code, body = await herald.post_event({**event, "recipients": {"users": [user.key]}})
    assert code == 202, body
    await herald.wait_status(nid)


async def test_the_inbox_lists_unread_first_and_marks_read(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada, grace = await people(herald, connector)
    for nid in ("n1", "n2", "n3"):
        await notify(herald, nid, ada, severity="warning" if nid == "n2" else "info")
    await notify(herald, "g1", grace)
    token = inbox_token(herald, ada)

    code, read = await herald.request("POST", "/api/inbox/n2/read", headers=bearer(token))
    assert code == 200 and read["id"] == "n2" and read["read"] is True
    again = await herald.request("POST", "/api/inbox/n2/read", headers=bearer(token))
    assert again == (200, read)  # the first time stays

    code, inbox = await herald.request("GET", "/api/inbox", headers=bearer(token))
    assert code == 200
    assert inbox["userId"] == ada.key and inbox["unread"] == 2
    assert [(i["id"], i["read"]) for i in inbox["items"]] == [
        ("n3", False), ("n1", False), ("n2", True),
    ]
    assert inbox["items"][2]["severity"] == "warning"
    assert float(inbox["cursor"]) <= time.time()

    # Grace's entry is not in Ada's inbox, whatever Ada's token says.
    code, body = await herald.request("POST", "/api/inbox/g1/read", headers=bearer(token))
    assert (code, body["error"]["code"]) == (404, "not_found")
    code, body = await herald.request("POST", "/api/inbox/%20x/read", headers=bearer(token))
    assert code == 400

    code, body = await herald.request("POST", "/api/inbox/read-all", headers=bearer(token))
    assert (code, body) == (200, {"userId": ada.key, "updated": 2})
    code, inbox = await herald.request("GET", "/api/inbox?limit=1", headers=bearer(token))
    assert inbox["unread"] == 0 and len(inbox["items"]) == 1
    code, grace_inbox = await herald.request(
        "GET", "/api/inbox", headers=bearer(inbox_token(herald, grace))
    )
    assert grace_inbox["unread"] == 1  # untouched


async def test_only_the_inbox_link_token_opens_the_inbox(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada, _ = await people(herald, connector)
    stale = LinkTokens(
        load_or_create_secret("", herald.data_dir), 900, clock=lambda: time.time() - 3600
    ).issue(ada.key, "inbox")
    for headers in (
        {},
        {"Authorization": f"Bearer {API_KEY}"},  # names nobody
        bearer(inbox_token(herald, ada, "webpush")),
        bearer(stale),
        bearer(inbox_token(herald, ada) + "x"),
    ):
        for method, path in (
            ("GET", "/api/inbox"),
            ("GET", "/api/inbox/events"),
            ("POST", "/api/inbox/read-all"),
            ("POST", "/api/inbox/token"),
            ("POST", "/api/inbox/n1/read"),
        ):
            code, body = await herald.request(method, path, headers=headers, auth=False)
            assert code == 401, (headers, path, body)
            assert body["error"]["code"] == "unauthorized"


async def test_an_open_page_renews_its_token(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada, _ = await people(herald, connector)
    code, renewed = await herald.request(
        "POST", "/api/inbox/token", headers=bearer(inbox_token(herald, ada))
    )
    assert code == 200
    assert herald.herald.links.verify(renewed["token"], "inbox") == ada.key
    code, _ = await herald.request("GET", "/api/inbox", headers=bearer(renewed["token"]))
    assert code == 200


async def test_renewal_never_goes_past_the_absolute_lifetime(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    # Issue 11 (4): a page could trade its token for a fresh one forever, so one leaked link
    # was lasting access. Renewals keep the original grant and end an hour (here) after it.
    herald = await herald_factory(HERALD_LINK_MAX_HOURS="1")
    ada, _ = await people(herald, connector)
    granted = time.time() - 55 * 60
    token = renewed_until_now(
        herald, signer(herald, granted).issue(ada.key, "inbox"), "inbox", granted
    )
    code, renewed = await herald.request("POST", "/api/inbox/token", headers=bearer(token))
    assert code == 200, renewed
    claims = herald.herald.links.verify_claims(renewed["token"], "inbox")
    assert claims.granted_at == int(granted)
    assert claims.expires_at <= granted + 3600  # 5 minutes left, not a fresh 15
    assert renewed["expiresAt"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims.expires_at)
    )

    # A link given two hours ago and renewed since (say by an instance allowing a day) is over.
    old = time.time() - 2 * 3600
    token = renewed_until_now(
        herald, signer(herald, old, 24).issue(ada.key, "inbox"), "inbox", old, max_hours=24
    )
    for method, path in (("POST", "/api/inbox/token"), ("GET", "/api/inbox")):
        code, body = await herald.request(method, path, headers=bearer(token), auth=False)
        assert code == 401, body
        assert "expired" in body["error"]["message"]


@asynccontextmanager
async def stream(
    herald: RunningHerald, token: str, last_event_id: str | None = None
) -> AsyncIterator[EventReader]:
    assert herald.http is not None
    headers = {**bearer(token), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with herald.http.get(
        f"{herald.url}/api/inbox/events", headers=headers, timeout=aiohttp.ClientTimeout(total=60)
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        yield EventReader(response)


async def test_the_stream_sends_a_snapshot_then_new_and_read_entries_at_once(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada, grace = await people(herald, connector)
    await notify(herald, "old", ada)
    token = inbox_token(herald, ada)
    async with stream(herald, token) as events:
        snapshot = await events.next()
        assert snapshot.event == "snapshot" and events.retry == 2000
        assert [i["id"] for i in snapshot.data["items"]] == ["old"]
        assert snapshot.data["unread"] == 1

        started = time.monotonic()
        code, _ = await herald.post_event(
            {"id": "new", "type": "it.outage", "title": "Mail is down", "severity": "error",
             "recipients": {"users": [ada.key, grace.key]}}
        )
        assert code == 202
        arrived = await events.until(lambda e: e.event == "notification")
        # The doorbell, not the 5-second store poll, brought it.
        assert time.monotonic() - started < 3.0
        assert arrived.data["id"] == "new" and arrived.data["severity"] == "error"
        assert arrived.data["read"] is False
        assert float(arrived.id or 0) >= float(snapshot.id or 0)

        # Marked read elsewhere (another tab, the chat): the stream says so.
        await herald.request("POST", "/api/inbox/new/read", headers=bearer(token))
        read = await events.until(lambda e: e.event == "notification" and e.data["read"])
        assert read.data["id"] == "new"
        last_id = read.id
    assert last_id is not None

    # While the page was away: an update of "new" and a brand-new entry.
    await notify(herald, "while-away", ada)
    async with stream(herald, token, last_id) as events:
        first = await events.next()
        assert first.event == "notification"  # no snapshot: it resumes
        seen = {first.data["id"]}
        while "while-away" not in seen:
            seen.add((await events.next()).data["id"])
        # (Entries changed within InboxApi.overlap_seconds before the cursor come again: a
        # write committed late may carry an earlier time. The page merges them by id.)

    # A Last-Event-ID Herald never gave out: a fresh snapshot.
    async with stream(herald, token, "not-a-cursor") as events:
        snapshot = await events.next()
        assert snapshot.event == "snapshot"
        assert [i["id"] for i in snapshot.data["items"]][:2] == ["while-away", "old"]


async def test_streams_end_when_herald_stops(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada, _ = await people(herald, connector)
    async with stream(herald, inbox_token(herald, ada)) as events:
        await events.next()
        assert herald.herald.inbox_feed.listeners(ada.key) == 1
        started = time.monotonic()
        await herald.stop()
        assert time.monotonic() - started < 5.0  # not the server's shutdown timeout
        while not events.closed:
            try:
                await events.next(5.0)
            except EOFError:
                break
            except aiohttp.ClientPayloadError:
                break


# --- two instances on one store: the poll fallback, heartbeats, expiry -------------------------


async def _instance(
    db: SqliteDatabase, tokens: LinkTokens, **timing: float
) -> tuple[TestServer, InboxFeed]:
    feed = InboxFeed()
    inbox = SqliteInboxStore(db, retention_seconds=86400)
    app = web.Application()
    app.add_routes(InboxApi(inbox, tokens, feed, **timing).routes())  # type: ignore[arg-type]

    async def close_streams(_: web.Application) -> None:
        feed.close()

    app.on_shutdown.append(close_streams)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, feed


async def test_a_write_by_another_instance_arrives_by_the_poll(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "herald.db", synchronous="NORMAL")
    await db.open()
    tokens = LinkTokens(b"0123456789abcdef0123456789abcdef", 60)
    here, here_feed = await _instance(db, tokens, poll_seconds=0.3, heartbeat_seconds=0.2)
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as http,
            http.get(
                str(here.make_url("/api/inbox/events")), headers=bearer(tokens.issue("u1", "inbox"))
            ) as response,
        ):
            events = EventReader(response)
            assert (await events.next()).event == "snapshot"
            # Another instance writes (its router rings its own doorbell, not this one's).
            notifications = SqliteNotificationStore(db)
            event = StoredEvent.from_document(
                {"id": "x1", "type": "t", "title": "from elsewhere", "recipients": {"all": True}}
            )
            _, record = await notifications.put("x1", hashlib.sha256(b"x1").hexdigest(), event,
                                                "t", 1)
            await SqliteDeliveryQueue(db).add_page("x1", record.version, [], ["u1"], None)
            arrived = await events.until(lambda e: e.event == "notification", timeout=5.0)
            assert arrived.data["title"] == "from elsewhere"
            assert here_feed.listeners("u1") == 1
            # Heartbeats keep an idle stream open.
            before = events.comments
            await asyncio.sleep(0.7)
            with contextlib.suppress(TimeoutError):
                await events.next(timeout=0.3)
            assert events.comments > before
    finally:
        await here.close()
        await db.close()


async def test_a_stream_ends_when_its_token_expires(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "herald.db", synchronous="NORMAL")
    await db.open()
    tokens = LinkTokens(b"0123456789abcdef0123456789abcdef", 2)
    server, _ = await _instance(db, tokens, poll_seconds=0.2, heartbeat_seconds=10)
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as http,
            http.get(
                str(server.make_url("/api/inbox/events")),
                headers=bearer(tokens.issue("u1", "inbox")),
            ) as response,
        ):
            events = EventReader(response)
            assert (await events.next()).event == "snapshot"
            started = time.monotonic()
            with contextlib.suppress(EOFError):
                await events.next(timeout=6.0)
            assert events.closed and time.monotonic() - started < 4.0
    finally:
        await server.close()
        await db.close()
