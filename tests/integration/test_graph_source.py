"""Microsoft Graph change notifications, end to end over real sockets.

Herald talks to an Entra ID stand-in (msal, client credentials, TLS with a certificate made for
the test) and a Graph stand-in that behaves like Graph: it validates each new subscription by
calling Herald back, enforces the bearer token and Outlook's maximum lifetime, delivers change
and lifecycle notifications, throttles on demand. A Teams user has a chat with the bot through
the Bot Connector stand-in, so calendar changes arrive there as cards. Time is the test's
(ManualClock): renewals are driven by moving it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.graph_subscriptions import CALENDAR
from tests.harness import Emulator, HeraldProcess, RunningHerald, free_port
from tests.integration.chat import Chat, call, card_texts
from tests.integration.conftest import GraphPeers
from tests.peers.connector import ConnectorStandIn
from tests.peers.graph import MAX_EVENT_MINUTES, _Subscription

MINUTE = 60.0


async def teams_chat(herald: RunningHerald, connector: ConnectorStandIn) -> Chat:
    emulator = Emulator(herald, connector.url)
    chat = Chat(herald, emulator, connector, emulator.teams_user())
    await chat.install()
    await chat.say("yes")  # consent
    return chat


async def put_calendar(herald: RunningHerald, user_id: str, allowed: bool) -> dict[str, Any]:
    code, body, _ = await call(
        herald, "PUT", f"/api/users/{user_id}/subscriptions/calendar", json={"allowed": allowed}
    )
    assert code == 200, body
    assert isinstance(body, dict)
    return body


async def get_calendar(herald: RunningHerald, user_id: str) -> dict[str, Any]:
    code, body, _ = await call(herald, "GET", f"/api/users/{user_id}/subscriptions/calendar")
    assert code == 200, body
    assert isinstance(body, dict)
    return body


async def subscribed(herald: RunningHerald, peers: GraphPeers, chat: Chat) -> _Subscription:
    state = await put_calendar(herald, chat.user.key, True)
    assert state["status"] == "active", state
    [subscription] = peers.graph.for_user(chat.user.key)
    return subscription


async def processed(herald: RunningHerald) -> None:
    """Every accepted notification processed and every resulting notification expanded."""
    await herald.herald.graph.settled()
    await herald.herald.router.drained()


def start_in(hours: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)


async def record_of(herald: RunningHerald, user_id: str) -> Any:
    source = herald.herald.graph
    return await source._subscriptions.get(user_id, CALENDAR)


# ---- subscribing


async def test_subscribe_creates_one_validated_subscription(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)

    assert subscription.resource == f"users/{chat.user.key}/events"
    assert subscription.change_type == "created,updated,deleted"
    assert subscription.notification_url == f"{graph_herald.url}/api/graph/notifications"
    assert subscription.lifecycle_url == f"{graph_herald.url}/api/graph/lifecycle"
    now = graph_peers.clock.now()
    assert now + (MAX_EVENT_MINUTES - 10) * MINUTE < subscription.expires_at
    assert subscription.expires_at <= now + MAX_EVENT_MINUTES * MINUTE
    # A random clientState per subscription, kept by Herald to check notifications with.
    record = await record_of(graph_herald, chat.user.key)
    assert subscription.client_state == record.client_state
    assert 32 <= len(record.client_state) <= 128
    assert record.subscription_id == subscription.id
    # Graph validated both URLs against Herald before creating the subscription, in time.
    validations = [d for d in graph.deliveries if d.kind == "validation"]
    assert len(validations) == 2
    assert all(d.status == 200 and d.content_type.startswith("text/plain") for d in validations)
    assert all(d.elapsed < 1.0 for d in validations)
    # Listed first, then created; app-only token from the Entra stand-in, once.
    methods = [(r.method, r.path) for r in graph.requests]
    assert methods.index(("GET", "/v1.0/subscriptions")) < methods.index(
        ("POST", "/v1.0/subscriptions")
    )
    assert len(graph_peers.entra.token_requests) == 1
    state = await get_calendar(graph_herald, chat.user.key)
    assert state["allowed"] is True and state["status"] == "active"
    assert state["expiresAt"].startswith(
        datetime.fromtimestamp(subscription.expires_at, UTC).strftime("%Y-%m-%dT%H:%M")
    )


async def test_repeat_subscribe_never_creates_a_second_one(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    first = await subscribed(graph_herald, graph_peers, chat)
    again = await put_calendar(graph_herald, chat.user.key, True)
    assert again["status"] == "active"
    assert [s.id for s in graph.for_user(chat.user.key)] == [first.id]
    assert len(graph.calls("POST", "/subscriptions")) == 1

    # A subscription left behind for the same calendar (a create whose answer was lost): Herald
    # cannot know its clientState, so it replaces it rather than holding two.
    await put_calendar(graph_herald, chat.user.key, False)
    stray = _Subscription(
        id="stray-subscription",
        resource=f"users/{chat.user.key}/events",
        user_id=chat.user.key.lower(),
        change_type="created,updated,deleted",
        notification_url=f"{graph_herald.url}/api/graph/notifications",
        lifecycle_url=None,
        client_state="not-herald's",
        expires_at=graph_peers.clock.now() + 3600,
    )
    graph.subscriptions[stray.id] = stray
    await put_calendar(graph_herald, chat.user.key, True)
    [only] = graph.for_user(chat.user.key)
    assert only.id != stray.id


async def test_unsubscribe_deletes_the_subscription(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    subscription = await subscribed(graph_herald, graph_peers, chat)
    state = await put_calendar(graph_herald, chat.user.key, False)
    assert (state["allowed"], state["status"], state["expiresAt"]) == (False, "off", None)
    assert graph_peers.graph.for_user(chat.user.key) == []
    assert [r.path for r in graph_peers.graph.calls("DELETE")] == [
        f"/v1.0/subscriptions/{subscription.id}"
    ]


async def test_throttled_graph_is_retried_after_retry_after(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    graph.throttle(1, retry_after="1", path_contains="/subscriptions")
    await subscribed(graph_herald, graph_peers, chat)
    throttled, retried = graph.requests[0], graph.requests[1]
    assert (throttled.status, retried.status) == (429, 200)
    assert retried.path == throttled.path
    assert retried.real - throttled.real >= 0.95  # Retry-After: 1 honoured


async def test_failed_validation_fails_creation_and_is_retried(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    graph.validation_timeout = 0.000001  # Herald's echo cannot arrive in time: Graph refuses
    state = await put_calendar(graph_herald, chat.user.key, True)
    assert state["status"] == "pending"
    assert "timed out" in state["lastError"]
    assert graph.live() == []
    # Backoff: not tried again at once, but once it has passed.
    source = graph_herald.herald.graph
    graph.validation_timeout = 10.0
    assert await source.maintain() == 0
    graph_peers.clock.advance(61)
    assert await source.maintain() == 1
    state = await get_calendar(graph_herald, chat.user.key)
    assert (state["status"], state["lastError"]) == ("active", None)
    assert len(graph.for_user(chat.user.key)) == 1


# ---- receiving


async def test_validation_handshake_echoes_the_token_as_plain_text(
    graph_herald: RunningHerald,
) -> None:
    assert graph_herald.http is not None
    token = "Validation: Testing client application reachability <b>&amp;</b> + % é"
    for path in ("/api/graph/notifications", "/api/graph/lifecycle"):
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with graph_herald.http.post(
            f"{graph_herald.url}{path}",
            params={"validationToken": token},
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert await response.text() == token
        assert loop.time() - started < 1.0


async def test_wrong_client_state_is_ignored_and_logged_with_202(
    graph_herald: RunningHerald,
    graph_peers: GraphPeers,
    connector: ConnectorStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    event = graph.add_event(chat.user.key, "Design review", start_in(24))
    caplog.set_level(logging.WARNING, logger="sources.graph_source")
    [wrong] = await graph.notify(chat.user.key, event["id"], "created", client_state="guessed")
    assert wrong.status == 202
    unknown = graph.notification(subscription, event["id"], "created")
    unknown["subscriptionId"] = "00000000-0000-0000-0000-000000000000"
    assert graph_herald.http is not None
    async with graph_herald.http.post(
        f"{graph_herald.url}/api/graph/notifications", json={"value": [unknown]}
    ) as response:
        assert response.status == 202
    assert "clientState does not match" in caplog.text
    assert "unknown subscription" in caplog.text
    assert "guessed" not in caplog.text  # the secret (or a guess at it) never logged
    assert await graph_herald.herald.graph._inbox.pending() == 0
    assert graph.calls("GET", "/events/") == []
    assert await chat.quiet(0.3) == []


async def test_changes_become_one_card_edited_in_place(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    await subscribed(graph_herald, graph_peers, chat)
    chat._new()
    user = chat.user.key

    # Outlook sends several notifications for one change: one card.
    event = graph.add_event(user, "Design review", start_in(24), location="Room 4")
    deliveries = await graph.notify(user, event["id"], "created", copies=3)
    assert all(d.status == 202 and d.elapsed < 3.0 for d in deliveries)
    await processed(graph_herald)
    [card] = await chat.wait_new(1)
    assert "New in your calendar: Design review" in card_texts(card)
    assert "Where: Room 4" in card_texts(card)
    assert "Organizer: Ada Lovelace" in card_texts(card)
    assert len(graph.calls("GET", "/events/")) == 1  # repeats dropped before any work

    # Moved: the same card is edited, saying when it was and is.
    graph.update_event(user, event["id"], start=start_in(26))
    await graph.notify(user, event["id"], "updated", copies=2)
    await processed(graph_herald)
    await connector.wait_for(lambda c: len(c.updates(chat.user.conversation_id)) == 1)
    [edit] = connector.updates(chat.user.conversation_id)
    assert "Moved: Design review" in card_texts(edit.body)
    assert "Was: " in card_texts(edit.body)

    # A change nobody can see (Outlook touched internal properties): nothing.
    graph.touch_event(user, event["id"])
    await graph.notify(user, event["id"], "updated", copies=2)
    await processed(graph_herald)
    # Removed: the card says so.
    graph.delete_event(user, event["id"])
    await graph.notify(user, event["id"], "deleted")
    await processed(graph_herald)
    await connector.wait_for(lambda c: len(c.updates(chat.user.conversation_id)) == 2)
    assert "Removed from your calendar: Design review" in card_texts(
        connector.updates(chat.user.conversation_id)[-1].body
    )
    assert await chat.quiet(0.3) == []  # never a second card for the same meeting
    assert len(connector.updates(chat.user.conversation_id)) == 2


async def test_restart_between_ack_and_processing_loses_nothing(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    await subscribed(graph_herald, graph_peers, chat)
    chat._new()
    event = graph.add_event(chat.user.key, "Quarterly planning", start_in(48))
    release = graph.stall_events()  # processing cannot finish before the restart
    [delivery] = await graph.notify(chat.user.key, event["id"], "created")
    assert delivery.status == 202 and delivery.elapsed < 3.0  # acknowledged, not processed
    async with asyncio.timeout(5):
        await graph.stalled.wait()  # Herald is fetching the event: mid-processing
    assert await graph_herald.herald.graph._inbox.pending() == 1

    await graph_herald.stop()  # right after the 202, with the work in flight
    release.set()
    await graph_herald.start()
    graph_peers.drive(graph_herald)
    await processed(graph_herald)
    [card] = await chat.wait_new(1)
    assert "New in your calendar: Quarterly planning" in card_texts(card)
    assert await chat.quiet(0.3) == []


# ---- renewal


async def test_renewal_happens_well_before_expiry_on_the_tests_clock(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    clock = graph_peers.clock
    source = graph_herald.herald.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    expires = subscription.expires_at

    clock.advance(expires - clock.now() - 12 * 3600 - 60)  # 12 h 1 min left: not yet
    assert await source.maintain() == 0
    assert graph.calls("PATCH") == []
    clock.advance(120)  # 11 h 59 min left: renew
    assert await source.maintain() == 1
    [patch] = graph.calls("PATCH")
    assert patch.path == f"/v1.0/subscriptions/{subscription.id}"
    assert subscription.expires_at > expires + 2 * 86400  # a full new lifetime from now
    assert subscription.expires_at <= clock.now() + MAX_EVENT_MINUTES * MINUTE
    assert await source.maintain() == 0  # renewed: nothing due
    state = await get_calendar(graph_herald, chat.user.key)
    assert state["status"] == "active"


async def test_renewal_retries_failures_with_backoff(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    clock = graph_peers.clock
    source = graph_herald.herald.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    clock.advance(subscription.expires_at - clock.now() - 3600)
    graph.throttle(1, retry_after="300", status=503, path_contains="/subscriptions/")
    assert await source.maintain() == 1  # Graph asked for 5 minutes: not waited out inline
    state = await get_calendar(graph_herald, chat.user.key)
    assert "503" in state["lastError"]
    assert await source.maintain() == 0  # backing off as asked
    clock.advance(301)
    assert await source.maintain() == 1
    assert [r.status for r in graph.calls("PATCH")] == [503, 200]
    assert (await get_calendar(graph_herald, chat.user.key))["lastError"] is None


async def test_expired_subscription_is_recreated_and_resynced(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    clock = graph_peers.clock
    source = graph_herald.herald.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    chat._new()
    # Herald was away past the expiry; meanwhile a meeting was added (Graph could not tell).
    clock.advance(subscription.expires_at - clock.now() + 60)
    graph.add_event(chat.user.key, "Added while away", start_in(72))
    assert await source.maintain() == 1
    [renewed] = graph.for_user(chat.user.key)
    assert renewed.id != subscription.id
    assert [r.status for r in graph.calls("PATCH")] == [404]
    await processed(graph_herald)
    [card] = await chat.wait_new(1)
    assert "New in your calendar: Added while away" in card_texts(card)


async def test_two_instances_never_renew_the_same_subscription_twice(
    graph_herald: RunningHerald,
    graph_peers: GraphPeers,
    connector: ConnectorStandIn,
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    clock = graph_peers.clock
    subscription = await subscribed(graph_herald, graph_peers, chat)
    # A second instance on the same store (a scale-out), with its own port.
    other = RunningHerald(graph_herald.data_dir, {**graph_herald.env, "PORT": str(free_port())})
    await other.start()
    try:
        graph_peers.drive(other)
        clock.advance(subscription.expires_at - clock.now() - 3600)
        done = await asyncio.gather(
            graph_herald.herald.graph.maintain(), other.herald.graph.maintain()
        )
        assert sorted(done) == [0, 1]
        assert len(graph.calls("PATCH")) == 1
    finally:
        await other.close()


# ---- lifecycle events


async def test_reauthorization_required_renews_at_once(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    graph_peers.clock.advance(3600)  # far from the renewal window
    delivery = await graph.lifecycle(subscription.id, "reauthorizationRequired")
    assert delivery.status == 202 and delivery.elapsed < 3.0
    await processed(graph_herald)
    [patch] = graph.calls("PATCH")
    assert patch.status == 200
    assert not subscription.needs_reauthorization


async def test_subscription_removed_is_recreated(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    delivery = await graph.lifecycle(subscription.id, "subscriptionRemoved")
    assert delivery.status == 202
    await processed(graph_herald)
    [recreated] = graph.for_user(chat.user.key)
    assert recreated.id != subscription.id
    record = await record_of(graph_herald, chat.user.key)
    assert record.subscription_id == recreated.id
    assert record.client_state == recreated.client_state != subscription.client_state


async def test_missed_resyncs_and_notifies_only_what_changed(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    graph.delta_page_size = 2  # several pages
    user = chat.user.key
    standup = graph.add_event(user, "Stand-up", start_in(20))
    review = graph.add_event(user, "Budget review", start_in(30))
    lunch = graph.add_event(user, "Team lunch", start_in(40))
    gone = graph.add_event(user, "Old sync", start_in(50))
    subscription = await subscribed(graph_herald, graph_peers, chat)  # baseline: no cards
    chat._new()
    # Changes Graph could not deliver: one moved, one new, one touched invisibly, one deleted.
    graph.update_event(user, review["id"], start=start_in(31))
    graph.add_event(user, "Hiring panel", start_in(60))
    graph.touch_event(user, lunch["id"])
    graph.delete_event(user, gone["id"])
    await graph.lifecycle(subscription.id, "missed")
    await processed(graph_herald)
    cards = await chat.wait_new(3)
    titles = {card_texts(c).splitlines()[0] for c in cards}
    assert titles == {
        "⚠️ Removed from your calendar: Old sync",
        "ℹ️ Moved: Budget review",
        "ℹ️ New in your calendar: Hiring panel",
    }
    assert await chat.quiet(0.3) == []
    assert standup["id"]  # untouched: nothing said about it
    # A second `missed` with nothing new changes nothing.
    await graph.lifecycle(subscription.id, "missed")
    await processed(graph_herald)
    assert await chat.quiet(0.3) == []


async def test_forgotten_sync_state_falls_back_to_a_full_sync(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    user = chat.user.key
    review = graph.add_event(user, "Budget review", start_in(30))
    subscription = await subscribed(graph_herald, graph_peers, chat)
    chat._new()
    graph.update_event(user, review["id"], location="Room 9")
    graph.forget_delta_tokens()
    await graph.lifecycle(subscription.id, "missed")
    await processed(graph_herald)
    [card] = await chat.wait_new(1)
    assert "Changed: Budget review" in card_texts(card)
    assert "Where: Room 9" in card_texts(card)
    assert any(r.status == 410 for r in graph.calls("GET", "/delta"))


async def test_stop_opt_out_unsubscribes_and_changes_are_dropped(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    chat = await teams_chat(graph_herald, connector)
    graph = graph_peers.graph
    subscription = await subscribed(graph_herald, graph_peers, chat)
    # Opting out through the API (not the chat): the next change ends the subscription.
    prefs, etag = await chat.preferences()
    code, _, _ = await call(
        graph_herald,
        "PUT",
        f"/api/users/{chat.user.key}/preferences",
        json={**prefs, "optedIn": False},
        headers={"If-Match": etag},
    )
    assert code == 200
    chat._new()
    event = graph.add_event(chat.user.key, "Offsite", start_in(24))
    await graph.notify(chat.user.key, event["id"], "created")
    await processed(graph_herald)
    assert graph.for_user(chat.user.key) == []
    assert graph.calls("DELETE")[0].path == f"/v1.0/subscriptions/{subscription.id}"
    assert graph.calls("GET", "/events/") == []
    assert await chat.quiet(0.3) == []
    state = await get_calendar(graph_herald, chat.user.key)
    assert (state["allowed"], state["status"]) == (False, "off")
    code, body, _ = await call(
        graph_herald,
        "PUT",
        f"/api/users/{chat.user.key}/subscriptions/calendar",
        json={"allowed": True},
    )
    assert (code, body["error"]["code"]) == (409, "opted_out")


# ---- who can have one


async def test_users_without_entra_id_and_herald_without_graph_are_refused(
    graph_herald: RunningHerald, herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(graph_herald, connector.url)
    user = emulator.user()
    await emulator.join(user)
    code, body, _ = await call(
        graph_herald,
        "PUT",
        f"/api/users/{user.key}/subscriptions/calendar",
        json={"allowed": True},
    )
    assert (code, body["error"]["code"]) == (409, "no_entra_id")
    state = await get_calendar(graph_herald, user.key)
    assert (state["eligible"], state["available"], state["status"]) == (False, True, "off")

    teams = Emulator(herald, connector.url).teams_user()
    await Emulator(herald, connector.url).join(teams)
    code, body, _ = await call(
        herald, "PUT", f"/api/users/{teams.key}/subscriptions/calendar", json={"allowed": True}
    )
    assert (code, body["error"]["code"]) == (503, "graph_off")
    state = await get_calendar(herald, teams.key)
    assert (state["eligible"], state["available"]) == (True, False)
    code, _, _ = await call(
        herald, "PUT", "/api/users/nobody/subscriptions/calendar", json={"allowed": True}
    )
    assert code == 404
    for bad in ({"allowed": "yes"}, {"allowed": 1}, {}, {"allowed": True, "x": 1}, [True]):
        code, body, _ = await call(
            herald, "PUT", f"/api/users/{teams.key}/subscriptions/calendar", json=bad
        )
        assert code == 400, (bad, body)


async def test_killed_right_after_the_202_loses_nothing(
    tmp_path: Path, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    process = HeraldProcess(tmp_path / "data", graph_peers.env(free_port()))
    await process.start()
    try:
        emulator = Emulator(process, connector.url)
        user = emulator.teams_user()
        assert await emulator.join(user) in (200, 201)
        code, body = await process.request(
            "PUT", f"/api/users/{user.key}/subscriptions/calendar", json={"allowed": True}
        )
        assert (code, body["status"]) == (200, "active"), body
        await connector.wait_for(1)  # the welcome
        connector.clear()
        event = graph.add_event(user.key, "Board meeting", start_in(24))
        release = graph.stall_events()
        [delivery] = await graph.notify(user.key, event["id"], "created")
        assert delivery.status == 202 and delivery.elapsed < 3.0
        await graph.stalled.wait()
        await process.kill()  # SIGKILL: no shutdown code runs
        release.set()
        await process.start()
        [card] = await connector.wait_for(1, timeout=20)
        assert "New in your calendar: Board meeting" in card_texts(card.body)
        await asyncio.sleep(0.3)
        assert len(connector.sent()) == 1
    finally:
        await process.close()
