"""Audiences and reach (issue 13), end to end over real sockets.

Herald expands Entra ID groups through the Graph stand-in (TLS, msal client credentials,
`transitiveMembers` paged with `@odata.nextLink`, 429 + Retry-After on demand), team rosters and
channels through the Bot Connector stand-in, and reaches people who never talked to the bot by
creating their 1:1 chat (`POST /v3/conversations`) or, when Teams answers that the app is not
installed for them, by installing it through Graph first.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ON_EVERY_BACKEND, HeraldFactory
from tests.harness import Emulator, HeraldClient, HeraldProcess, RunningHerald, free_port
from tests.integration.chat import Chat, card_texts
from tests.integration.conftest import GraphPeers
from tests.peers.connector import ConnectorStandIn, Member, TeamsLimits

CATALOG_APP = "6e3f3c53-0d3e-4b0e-8c5a-4f6f3a1e9d21"
TEAM = "19:team-ops-0001@thread.tacv2"
INCIDENT = "19:incident-0001@thread.tacv2"


def gid() -> str:
    return str(uuid.uuid4())


async def reach_herald(
    herald_factory: HeraldFactory,
    graph_peers: GraphPeers,
    connector: ConnectorStandIn,
    **env: str,
) -> RunningHerald:
    """Herald with Graph on the stand-ins and the tenant's connector on the stand-in."""
    running = await herald_factory(
        **graph_peers.env(free_port()),
        HERALD_TEAMS_SERVICE_URL=connector.url,
        **env,
    )
    return graph_peers.drive(running)


async def post(herald: HeraldClient, recipients: dict[str, Any], **event: Any) -> str:
    code, body = await herald.post_event(
        {"type": "case", "title": "A case was raised", "recipients": recipients, **event}
    )
    assert code == 202, body
    return str(body["id"])


def creates(connector: ConnectorStandIn) -> list[int]:
    """The status of every create-conversation call, accepted or not."""
    return [r.status for r in connector.recorded if r.kind == "create"]


async def report(herald: RunningHerald, notification_id: str) -> list[dict[str, str]]:
    """The per-recipient CSV report, as rows."""
    code, text = await herald.request("GET", f"/api/notifications/{notification_id}/report.csv")
    assert code == 200, text
    return list(csv.DictReader(io.StringIO(text)))


def created_members(connector: ConnectorStandIn) -> list[str]:
    return [r.body["members"][0]["id"] for r in connector.created()]


async def test_a_group_of_1200_over_three_pages_reaches_everyone_once(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    graph.member_page_size = 400
    group = gid()
    people = [gid() for _ in range(1_200)]
    graph.add_group(group, people, devices=3)
    herald = await reach_herald(
        herald_factory, graph_peers, connector, HERALD_THROTTLED_CHANNELS="none"
    )

    notification = await post(herald, {"groups": [group]})
    status = await herald.wait_status(notification, timeout=120)

    pages = graph.calls("GET", "/transitiveMembers/microsoft.graph.user")
    assert len(pages) == 3
    assert len(graph_peers.entra.token_requests) == 1  # one app-only token, cached by msal
    assert all(r.status == 200 for r in pages)
    # Each person's chat created once, and one card in each.
    assert Counter(created_members(connector)) == Counter(people)
    per_chat = Counter(r.conversation_id for r in connector.sent())
    assert len(per_chat) == 1_200 and set(per_chat.values()) == {1}
    assert status["recipients"] == 1_200
    assert status["counters"]["delivered"] == 1_200
    assert status["reach"]["created"] == 1_200
    [part] = status["audience"]["parts"]
    assert part == {
        "kind": "group",
        "id": group,
        "state": "done",
        "listed": 1_200,
        "added": 1_200,
        "reason": None,
    }


async def test_a_throttled_graph_is_waited_for_and_nested_groups_count_once(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """429 + Retry-After on a page of members: the page is asked again after it; a nested
    group's people are members too (transitive), devices are not."""
    graph = graph_peers.graph
    graph.member_page_size = 3
    inner, outer = gid(), gid()
    shared = gid()
    graph.add_group(inner, [shared, gid()], devices=1)
    graph.add_group(outer, [shared, gid(), gid(), gid()], groups=[inner], devices=2)
    herald = await reach_herald(herald_factory, graph_peers, connector)
    graph.throttle(1, retry_after="1", path_contains="skiptoken=3")

    notification = await post(herald, {"groups": [outer]})
    status = await herald.wait_status(notification, timeout=20)

    assert [r.status for r in graph.calls("GET", "/transitiveMembers")] == [200, 429, 200]
    assert len(created_members(connector)) == 5 == len(set(created_members(connector)))
    assert status["recipients"] == 5
    assert status["counters"]["delivered"] == 5


async def test_someone_who_never_talked_to_the_bot_gets_the_card_after_an_install(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    tenant = graph_peers.entra.tenant
    connector.require_installation = True
    graph.catalog_apps.add(CATALOG_APP)
    graph.on_install = lambda user_id: connector.install(user_id, tenant)
    owner = graph.add_user(upn="owner@contoso.example")
    blocked = graph.add_user(upn="blocked@contoso.example")
    graph.install_blocked.add(blocked["id"])
    herald = await reach_herald(
        herald_factory, graph_peers, connector, HERALD_TEAMS_CATALOG_APP_ID=CATALOG_APP
    )

    notification = await post(
        herald,
        {"users": ["owner@contoso.example", "blocked@contoso.example", "nobody@contoso.example"]},
    )
    status = await herald.wait_status(notification, timeout=20)

    # Teams refused the chat (app not installed), Graph installed it, the chat was found.
    assert creates(connector) == [403, 403]
    [install_ok, install_blocked] = sorted(
        graph.calls("POST", "/teamwork/installedApps"), key=lambda r: r.status
    )
    assert install_ok.status == 201 and install_blocked.status == 403
    # (the stand-in accepts only a teamsApp@odata.bind to this catalog app)
    chat_id = connector.install(owner["id"], tenant)
    [card] = connector.sent(chat_id)
    assert "A case was raised" in card_texts(card.body)
    assert status["reach"] == {
        "created": 0,
        "installed": 1,
        "stored": 0,
        "notInstallable": {"forbidden (Forbidden)": 1},
    }
    assert status["reasons"]["skipped:unknown-user"] == 1
    rows = {(r["userId"], r["status"], r["reason"]) for r in await report(herald, notification)}
    assert rows == {
        (owner["id"], "delivered", "installed"),
        (blocked["id"], "failed", "not-installable: forbidden (Forbidden)"),
        ("nobody@contoso.example", "skipped", "unknown-user"),
    }

    # The chat is remembered: the next notification goes straight there.
    again = await post(herald, {"users": [owner["id"]]})
    status = await herald.wait_status(again, timeout=20)
    assert len(connector.sent(chat_id)) == 2
    assert len(graph.calls("POST", "/teamwork/installedApps")) == 2
    assert status["counters"]["delivered"] == 1


async def test_without_installation_configured_the_person_is_counted_not_installable(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    connector.require_installation = True
    person = graph_peers.graph.add_user()
    herald = await reach_herald(herald_factory, graph_peers, connector)
    notification = await post(herald, {"users": [person["id"]]})
    status = await herald.wait_status(notification, timeout=20)
    assert status["reach"]["notInstallable"] == {"installation-off": 1}
    assert graph_peers.graph.calls("POST", "/teamwork/installedApps") == []
    assert creates(connector) == [403]  # tried once, not retried


def team_update(emulator: Emulator, tenant: str, **fields: Any) -> dict[str, Any]:
    """A conversationUpdate in the team's General channel, as Teams sends it."""
    someone = emulator.teams_user(tenant_id=tenant)
    activity = emulator.activity(someone, "conversationUpdate", **fields)
    activity["conversation"] = {
        "id": TEAM,
        "conversationType": "channel",
        "isGroup": True,
        "tenantId": tenant,
    }
    activity["channelData"] = {
        "team": {"id": TEAM, "name": "Ops"},
        "tenant": {"id": tenant},
        **activity.get("channelData", {}),
        **fields.pop("channelData", {}),
    }
    activity["channelData"]["team"] = {"id": TEAM, "name": "Ops"}
    activity["channelData"]["tenant"] = {"id": tenant}
    return activity


async def test_a_channel_gets_one_post_and_none_once_the_bot_is_removed(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    tenant = graph_peers.entra.tenant
    herald = await reach_herald(herald_factory, graph_peers, connector)
    emulator = Emulator(herald, connector.url)
    connector.set_team_channels(TEAM, [(TEAM, None), (INCIDENT, "incident")])
    bot = {"id": f"28:{Emulator.BOT_ID}", "name": "Herald"}
    added = team_update(
        emulator, tenant, membersAdded=[bot], channelData={"eventType": "teamMemberAdded"}
    )
    assert await emulator.post(added) in (200, 201)

    notification = await post(
        herald,
        {
            "channels": [
                {"teamId": TEAM, "channelId": INCIDENT},
                {"teamId": TEAM, "channelId": INCIDENT},
            ]
        },
    )
    status = await herald.wait_status(notification, timeout=20)
    [post_record] = connector.sent(INCIDENT)
    assert "A case was raised" in card_texts(post_record.body)
    assert post_record.reply_to_id is None  # a new thread in the channel
    assert connector.sent(TEAM) == []
    assert status["counters"]["delivered"] == 1 and status["recipients"] == 1

    removed = team_update(
        emulator, tenant, membersRemoved=[bot], channelData={"eventType": "teamMemberRemoved"}
    )
    assert await emulator.post(removed) in (200, 201)
    later = await post(herald, {"channels": [{"teamId": TEAM, "channelId": INCIDENT}]})
    status = await herald.wait_status(later, timeout=20)
    assert len(connector.sent(INCIDENT)) == 1
    assert status["reasons"] == {"skipped:channel-removed": 1}

    unknown = await post(herald, {"channels": [{"teamId": TEAM, "channelId": "19:x@thread.tacv2"}]})
    status = await herald.wait_status(unknown, timeout=20)
    assert status["reasons"] == {"skipped:unknown-channel": 1}


async def test_opt_in_required_opens_no_chat_and_installs_nothing(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    graph.catalog_apps.add(CATALOG_APP)
    group = gid()
    graph.add_group(group, [gid(), gid()])
    herald = await reach_herald(
        herald_factory,
        graph_peers,
        connector,
        HERALD_TEAMS_CATALOG_APP_ID=CATALOG_APP,
        HERALD_OPT_IN_REQUIRED="true",
    )
    notification = await post(herald, {"groups": [group]})
    status = await herald.wait_status(notification, timeout=20)
    assert status["counters"]["delivered"] == 0 and status["counters"]["skipped"] == 2
    assert connector.recorded == []
    assert graph.calls("POST", "/teamwork/installedApps") == []


@ON_EVERY_BACKEND
async def test_a_person_in_two_groups_and_a_team_gets_one_message(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    tenant = graph_peers.entra.tenant
    herald = await reach_herald(herald_factory, graph_peers, connector)
    emulator = Emulator(herald, connector.url)
    # Grace talked to the bot; Alan never did. Both are in both groups and in the team.
    grace = Chat(herald, emulator, connector, emulator.teams_user(tenant_id=tenant))
    await grace.install()
    welcomed = len(grace.records())
    alan, other = gid(), gid()
    sales, london = gid(), gid()
    graph.add_group(sales, [grace.user.key, alan])
    graph.add_group(london, [alan, grace.user.key, other])
    connector.set_team_channels(TEAM, [(TEAM, None)])
    connector.set_roster(
        TEAM,
        [
            Member(id=f"29:{p}", name=p[:4], aad_object_id=p, tenant_id=tenant)
            for p in (alan, grace.user.key)
        ],
    )
    bot = {"id": f"28:{Emulator.BOT_ID}", "name": "Herald"}
    assert await emulator.post(
        team_update(
            emulator, tenant, membersAdded=[bot], channelData={"eventType": "teamMemberAdded"}
        )
    ) in (200, 201)

    notification = await post(
        herald,
        {"groups": [sales, london], "teams": [TEAM], "users": [alan, grace.user.key]},
    )
    status = await herald.wait_status(notification, timeout=20)

    assert len(grace.records()) == welcomed + 1
    assert Counter(created_members(connector)) == Counter({alan: 1, other: 1})
    assert status["recipients"] == 3
    assert status["counters"]["delivered"] == 3
    kinds = [(p["kind"], p["added"]) for p in status["audience"]["parts"]]
    assert kinds == [("users", 2), ("group", 0), ("group", 1), ("team", 0)]


@pytest.mark.slow
async def test_a_restart_mid_expansion_loses_nobody(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """Graph throttles the third page for a long time; Herald stops while it waits, and the
    next start goes on from the saved cursor: everybody once."""
    graph = graph_peers.graph
    graph.member_page_size = 100
    group = gid()
    people = [gid() for _ in range(450)]
    graph.add_group(group, people)
    herald = await reach_herald(
        herald_factory, graph_peers, connector, HERALD_THROTTLED_CHANNELS="none"
    )
    graph.throttle(1, retry_after="3600", path_contains="skiptoken=200")

    notification = await post(herald, {"groups": [group]})
    status = await herald.wait_status(
        notification, lambda s: s["audience"]["parts"][0]["reason"] is not None, 20
    )
    assert status["status"] == "accepted"
    assert status["audience"]["parts"][0]["listed"] == 200
    await herald.wait_status(notification, lambda s: s["counters"]["delivered"] == 200, 30)

    await herald.restart()
    graph_peers.drive(herald)
    status = await herald.wait_status(notification, timeout=60)

    assert Counter(created_members(connector)) == Counter(people)
    assert len(connector.sent()) == 450
    assert status["recipients"] == 450
    starts = [
        r for r in graph.calls("GET", "/transitiveMembers") if "skiptoken" not in str(r.query)
    ]
    assert len(starts) == 1  # resumed from the saved nextLink, not from the first page


async def test_a_team_named_by_its_group_id_is_its_direct_members(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """A team the bot is not in, named by its Microsoft 365 group's object id: its members
    (not transitive: a team's roster has no nested groups)."""
    graph = graph_peers.graph
    team_group, nested = gid(), gid()
    direct = [gid(), gid()]
    graph.add_group(nested, [gid()])
    graph.add_group(team_group, direct, groups=[nested])
    herald = await reach_herald(herald_factory, graph_peers, connector)
    notification = await post(herald, {"teams": [team_group]})
    status = await herald.wait_status(notification, timeout=20)
    assert sorted(created_members(connector)) == sorted(direct)
    assert [r.path for r in graph.calls("GET", "/groups/")] == [
        f"/v1.0/groups/{team_group}/members/microsoft.graph.user"
    ]
    assert status["counters"]["delivered"] == 2


async def test_a_part_that_cannot_be_listed_is_counted_and_the_others_go_on(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    group = gid()
    graph.add_group(group, [gid()])
    missing = gid()
    herald = await reach_herald(herald_factory, graph_peers, connector)
    notification = await post(herald, {"groups": [missing, group], "teams": [TEAM]})
    status = await herald.wait_status(notification, timeout=20)
    parts = [(p["kind"], p["state"], p["reason"]) for p in status["audience"]["parts"]]
    assert parts == [
        ("group", "failed", "group-not-found"),
        ("group", "done", None),
        ("team", "failed", "unknown-team"),
    ]
    assert status["counters"]["delivered"] == 1
    rows = {(r["userId"], r["reason"]) for r in await report(herald, notification)}
    assert (f"group:{missing}", "group-not-found") in rows
    assert (f"team:{TEAM}", "unknown-team") in rows


async def test_channels_follow_the_team_as_it_changes(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """Installed in a team (installationUpdate): its channels are stored; a channel created
    later is stored, a deleted one forgotten; uninstalled: all of them forgotten."""
    tenant = graph_peers.entra.tenant
    herald = await reach_herald(herald_factory, graph_peers, connector)
    emulator = Emulator(herald, connector.url)
    connector.set_team_channels(TEAM, [(TEAM, None), (INCIDENT, "incident")])
    installed = team_update(emulator, tenant)
    installed.update(type="installationUpdate", action="add")
    assert await emulator.post(installed) in (200, 201)
    welcome = len(connector.sent())  # the bot greets the team in its General channel

    later = "19:later-0001@thread.tacv2"
    created = team_update(
        emulator,
        tenant,
        channelData={"eventType": "channelCreated", "channel": {"id": later, "name": "later"}},
    )
    assert await emulator.post(created) in (200, 201)
    deleted = team_update(
        emulator,
        tenant,
        channelData={"eventType": "channelDeleted", "channel": {"id": INCIDENT, "name": "x"}},
    )
    assert await emulator.post(deleted) in (200, 201)

    channels = [{"teamId": TEAM, "channelId": c} for c in (TEAM, INCIDENT, later)]
    first = await post(herald, {"channels": channels})
    status = await herald.wait_status(first, timeout=20)
    assert status["counters"]["delivered"] == 2
    assert status["reasons"] == {"skipped:channel-removed": 1}
    assert len(connector.sent(later)) == 1
    assert [r.reply_to_id for r in connector.sent(TEAM)[welcome:]] == [None]

    uninstalled = team_update(emulator, tenant)
    uninstalled.update(type="installationUpdate", action="remove")
    assert await emulator.post(uninstalled) in (200, 201)
    second = await post(herald, {"channels": channels})
    status = await herald.wait_status(second, timeout=20)
    assert status["reasons"] == {"skipped:channel-removed": 3}
    assert len(connector.sent()) == welcome + 2


@pytest.mark.slow
async def test_a_crash_mid_expansion_loses_nobody(
    tmp_path: Path, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """`python app.py` killed (SIGKILL) while Graph holds the third page back: the next
    start resumes from the saved nextLink; everybody once."""
    graph = graph_peers.graph
    graph.member_page_size = 100
    group = gid()
    people = [gid() for _ in range(350)]
    graph.add_group(group, people)
    port = free_port()
    env = {
        **graph_peers.env(port),
        "HERALD_TEAMS_SERVICE_URL": connector.url,
        "HERALD_THROTTLED_CHANNELS": "none",
    }
    herald = HeraldProcess(tmp_path / "data", env)
    await herald.start()
    try:
        graph.throttle(1, retry_after="3600", path_contains="skiptoken=200")
        notification = await post(herald, {"groups": [group]})
        await herald.wait_status(notification, lambda s: s["counters"]["delivered"] == 200, 30)
        await herald.kill()
        await herald.start()
        status = await herald.wait_status(notification, timeout=60)
    finally:
        await herald.close()
    assert Counter(created_members(connector)) == Counter(people)
    assert len(connector.sent()) == 350
    assert status["recipients"] == 350


@pytest.mark.parametrize("named_by", ["group", "users"])
async def test_someone_who_only_wrote_in_a_channel_gets_a_chat_of_their_own(
    herald_factory: HeraldFactory,
    graph_peers: GraphPeers,
    connector: ConnectorStandIn,
    named_by: str,
) -> None:
    """A message in a team's channel makes Herald know the person, not a conversation of
    theirs: a group naming them opens their 1:1 chat, and nothing is posted in the channel.
    Somebody who removed the bot from their chat is not written to again."""
    graph = graph_peers.graph
    tenant = graph_peers.entra.tenant
    herald = await reach_herald(herald_factory, graph_peers, connector)
    emulator = Emulator(herald, connector.url)
    writer = emulator.teams_user(tenant_id=tenant)
    in_channel = emulator.activity(writer, "message", text="hello")
    in_channel["conversation"] = {
        "id": INCIDENT,
        "conversationType": "channel",
        "isGroup": True,
        "tenantId": tenant,
    }
    in_channel["channelData"] = {"team": {"id": TEAM}, "tenant": {"id": tenant}}
    assert await emulator.post(in_channel) in (200, 201)
    leaver = Chat(herald, emulator, connector, emulator.teams_user(tenant_id=tenant))
    await leaver.install()
    # They removed the bot: Teams refuses the next send (403), and Herald closes the chat.
    connector.fail(leaver.user.conversation_id, 403, times=None)
    first = await post(herald, {"users": [leaver.user.key]})
    assert (await herald.wait_status(first, timeout=20))["counters"]["deadTargets"] == 1
    before = len(connector.sent())

    both = [writer.aad_object_id or "", leaver.user.key]
    group = gid()
    graph.add_group(group, both)
    notification = await post(
        herald, {"groups": [group]} if named_by == "group" else {"users": both}
    )
    status = await herald.wait_status(notification, timeout=20)

    assert created_members(connector) == [writer.aad_object_id]
    assert len(connector.sent()) == before + 1
    assert status["reach"]["created"] == 1
    assert status["counters"]["delivered"] == 1
    assert status["reasons"] == {"skipped:no-target": 1}  # the one who removed the bot


async def test_creating_chats_counts_in_the_tenants_teams_budget(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """Teams allows an app 50 calls/s per tenant, create-conversation calls included (the
    stand-in enforces it): 100 people who never talked to the bot are 200 calls, and Herald
    makes them without a single 429."""
    connector.teams_limits = TeamsLimits()
    group = gid()
    graph_peers.graph.member_page_size = 999
    graph_peers.graph.add_group(group, [gid() for _ in range(100)])
    herald = await reach_herald(herald_factory, graph_peers, connector)
    started = time.monotonic()
    notification = await post(herald, {"groups": [group]})
    status = await herald.wait_status(notification, timeout=60)
    elapsed = time.monotonic() - started
    assert status["counters"]["delivered"] == 100
    assert len(connector.created()) == 100
    assert connector.counters.throttled == 0
    assert elapsed >= (200 - 50) / 50 * 0.9  # at most a burst above 50 calls/s


async def test_an_app_installed_already_is_used_as_it_is(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """Graph answers 409 (an admin installed the app meanwhile, or an earlier try did): Herald
    finds the installation and its chat, and sends there."""
    graph = graph_peers.graph
    connector.require_installation = True
    graph.catalog_apps.add(CATALOG_APP)
    person = graph.add_user()
    graph.installed[person["id"]] = {CATALOG_APP: "preinstalled-1"}
    graph.chats["preinstalled-1"] = "a:chat-from-an-admin-install"
    herald = await reach_herald(
        herald_factory, graph_peers, connector, HERALD_TEAMS_CATALOG_APP_ID=CATALOG_APP
    )
    notification = await post(herald, {"users": [person["id"]]})
    status = await herald.wait_status(notification, timeout=20)
    assert [r.status for r in graph.calls("POST", "/teamwork/installedApps")] == [409]
    assert len(connector.sent("a:chat-from-an-admin-install")) == 1
    assert status["reach"]["installed"] == 1


async def test_a_group_graph_keeps_refusing_is_given_up_after_eight_tries(
    herald_factory: HeraldFactory, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    """Nothing is retried forever: a part whose pages Graph keeps throttling is counted as
    failed with the reason, and the other parts are delivered."""
    graph = graph_peers.graph
    stuck, fine = gid(), gid()
    graph.add_group(stuck, [gid()])
    graph.add_group(fine, [gid()])
    graph.throttle(10_000, retry_after="0", path_contains=f"groups/{stuck}/")
    herald = await reach_herald(herald_factory, graph_peers, connector)
    notification = await post(herald, {"groups": [stuck, fine]})
    status = await herald.wait_status(notification, timeout=60)
    first, second = status["audience"]["parts"]
    assert first["state"] == "failed"
    assert first["reason"].endswith("(gave up after 8 attempts)")
    assert second["state"] == "done"
    assert status["counters"]["delivered"] == 1
    assert status["counters"]["skipped"] == 1
