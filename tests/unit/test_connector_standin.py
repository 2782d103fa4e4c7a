"""The Bot Connector stand-in answers like the real service, over real sockets.

Every other test that involves Teams trusts this peer, so it is checked here on its own: routes,
ids, error bodies, throttling, auth, encoded Teams ids, and the standalone benchmark sink.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from tests.peers.connector import (
    DEFAULT_TENANT,
    ConnectorStandIn,
    Member,
    TeamsLimits,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEAMS_CHANNEL_ID = "19:abc@thread.v2;messageid=1"
TEAMS_PERSONAL_ID = "a:1XyzAbC-_dEf"


class FrozenClock:
    """A rate-limiter clock that moves only when the test says, so bucket counts are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def activity(
    conversation_id: str,
    text: str = "hello",
    *,
    tenant: str | None = None,
    channel_tenant: str | None = None,
) -> dict[str, Any]:
    conversation: dict[str, Any] = {"id": conversation_id}
    if tenant is not None:
        conversation["tenantId"] = tenant
    body: dict[str, Any] = {
        "type": "message",
        "text": text,
        "from": {"id": "28:bot", "name": "Herald"},
        "conversation": conversation,
        "recipient": {"id": "29:user"},
    }
    if channel_tenant is not None:
        body["channelData"] = {"tenant": {"id": channel_tenant}}
    return body


def v3(
    connector: ConnectorStandIn, conversation_id: str, tail: str = "", *, encode: bool = True
) -> URL:
    """URL of a /v3/conversations call; ``encode`` quotes the id as msrest does (safe='')."""
    cid = quote(conversation_id, safe="") if encode else conversation_id
    return URL(f"{connector.url}/v3/conversations/{cid}{tail}", encoded=True)


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorStandIn]:
    async with ConnectorStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: URL, body: dict[str, Any], **kwargs: Any
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    async with http.post(url, json=body, **kwargs) as response:
        return response.status, await response.json(content_type=None), response.headers


# ------------------------------------------------------------------- routes


async def test_send_to_conversation_records_and_returns_id(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))

    assert status == 200
    assert isinstance(body["id"], str) and body["id"]
    [sent] = connector.sent()
    assert sent.method == "POST"
    assert sent.kind == "send"
    assert sent.path == "/v3/conversations/conv-1/activities"
    assert sent.conversation_id == "conv-1"
    assert sent.activity_id == body["id"]
    assert sent.body["text"] == "hello"
    assert sent.tenant_id == DEFAULT_TENANT
    assert sent.at <= time.monotonic()


async def test_reply_records_reply_to_id(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    url = v3(connector, "conv-1", "/activities/" + quote("1:abc|0001", safe=""))
    status, body, _ = await post(http, url, activity("conv-1"))

    assert status == 200
    [reply] = connector.sent("conv-1")
    assert reply.kind == "reply"
    assert reply.reply_to_id == "1:abc|0001"
    assert reply.activity_id == body["id"] != "1:abc|0001"


async def test_ids_are_unique(connector: ConnectorStandIn, http: aiohttp.ClientSession) -> None:
    results = await asyncio.gather(
        *(
            post(http, v3(connector, f"conv-{i % 3}", "/activities"), activity(f"conv-{i % 3}"))
            for i in range(60)
        )
    )

    ids = [body["id"] for _, body, _ in results]
    assert len(set(ids)) == 60
    assert {r.activity_id for r in connector.sent()} == set(ids)


async def test_update_known_activity(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    _, sent, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    edited = activity("conv-1", "edited") | {"id": sent["id"]}

    async with http.put(v3(connector, "conv-1", f"/activities/{sent['id']}"), json=edited) as r:
        assert r.status == 200
        assert await r.json() == {"id": sent["id"]}

    [update] = connector.updates("conv-1")
    assert update.method == "PUT"
    assert update.activity_id == sent["id"]
    assert update.body["text"] == "edited"
    assert connector.counters.updates == 1


async def test_update_of_unknown_id_is_404(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    _, sent, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))

    for conversation_id, activity_id in [("conv-1", "never-sent"), ("conv-2", sent["id"])]:
        url = v3(connector, conversation_id, f"/activities/{activity_id}")
        async with http.put(url, json=activity(conversation_id)) as response:
            assert response.status == 404
            error = (await response.json())["error"]
            assert error["code"] == "ActivityNotFoundInConversation"
            assert error["message"]
    assert connector.updates() == []
    assert [r.status for r in connector.rejected()] == [404, 404]


async def test_delete(connector: ConnectorStandIn, http: aiohttp.ClientSession) -> None:
    _, sent, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))

    async with http.delete(v3(connector, "conv-1", f"/activities/{sent['id']}")) as response:
        assert response.status == 200

    [deleted] = connector.deletes("conv-1")
    assert deleted.method == "DELETE"
    assert deleted.activity_id == sent["id"]
    # A deleted activity can no longer be edited.
    async with http.put(
        v3(connector, "conv-1", f"/activities/{sent['id']}"), json=activity("conv-1")
    ) as response:
        assert response.status == 404


async def test_create_conversation(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    parameters = {
        "isGroup": False,
        "bot": {"id": "28:bot"},
        "members": [{"id": "29:user-1"}],
        "tenantId": "tenant-a",
        "activity": activity("", "welcome"),
    }
    status, body, _ = await post(http, URL(connector.url + "/v3/conversations"), parameters)

    assert status == 200
    assert body["serviceUrl"] == connector.url
    assert body["id"].startswith("a:")
    assert body["activityId"]
    [created] = connector.created()
    assert created.conversation_id == body["id"]
    assert created.activity_id == body["activityId"]
    assert created.tenant_id == "tenant-a"
    assert created.body["members"] == [{"id": "29:user-1"}]

    # Teams gives back the existing 1:1 chat for the same user; the first message can be edited.
    without_activity = {k: v for k, v in parameters.items() if k != "activity"}
    _, again, _ = await post(http, URL(connector.url + "/v3/conversations"), without_activity)
    assert again["id"] == body["id"]
    assert "activityId" not in again
    url = v3(connector, body["id"], f"/activities/{body['activityId']}")
    async with http.put(url, json=activity(body["id"], "edited")) as response:
        assert response.status == 200


# ------------------------------------------------------------------- roster


async def test_roster(connector: ConnectorStandIn, http: aiohttp.ClientSession) -> None:
    ada = Member(
        id="29:ada",
        name="Ada Lovelace",
        aad_object_id="aad-ada",
        email="ada@contoso.com",
        user_principal_name="ada@contoso.com",
        tenant_id="tenant-a",
    )
    bob = Member(id="29:bob", name="Bob", aad_object_id="aad-bob", tenant_id="tenant-a")
    connector.set_roster(TEAMS_PERSONAL_ID, [ada, bob])

    async with http.get(v3(connector, TEAMS_PERSONAL_ID, "/members")) as response:
        assert response.status == 200
        members = await response.json()
    assert members[0] == {
        "id": "29:ada",
        "name": "Ada Lovelace",
        "aadObjectId": "aad-ada",
        "email": "ada@contoso.com",
        "userPrincipalName": "ada@contoso.com",
        "tenantId": "tenant-a",
        "userRole": "user",
    }
    assert [m["id"] for m in members] == ["29:ada", "29:bob"]

    # By channel id, or (as Teams allows) by AAD object id.
    for member_id in ["29:ada", "aad-ada"]:
        url = v3(connector, TEAMS_PERSONAL_ID, "/members/" + quote(member_id, safe=""))
        async with http.get(url) as response:
            assert response.status == 200
            assert (await response.json())["userPrincipalName"] == "ada@contoso.com"

    async with http.get(v3(connector, TEAMS_PERSONAL_ID, "/members/29%3Anobody")) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "MemberNotFoundInConversation"

    async with http.get(v3(connector, "unknown-conversation", "/members")) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "ConversationNotFound"

    assert [r.kind for r in connector.recorded] == [
        "members",
        "member",
        "member",
        "member",
        "members",
    ]


async def test_paged_members(connector: ConnectorStandIn, http: aiohttp.ClientSession) -> None:
    connector.set_roster("conv-1", [Member(id=f"29:u{i}", name=f"U{i}") for i in range(5)])
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {"pageSize": "2"} | ({"continuationToken": token} if token else {})
        async with http.get(v3(connector, "conv-1", "/pagedmembers"), params=query) as response:
            page = await response.json()
        pages += 1
        seen += [m["id"] for m in page["members"]]
        token = page.get("continuationToken")
        if token is None:
            break
    assert pages == 3
    assert seen == [f"29:u{i}" for i in range(5)]


# --------------------------------------------------------------- Teams ids


@pytest.mark.parametrize("encode", [True, False], ids=["encoded", "raw"])
@pytest.mark.parametrize("conversation_id", [TEAMS_CHANNEL_ID, TEAMS_PERSONAL_ID, "a:b@c;d=e"])
async def test_teams_conversation_ids_route(
    connector: ConnectorStandIn,
    http: aiohttp.ClientSession,
    conversation_id: str,
    encode: bool,
) -> None:
    url = v3(connector, conversation_id, "/activities", encode=encode)
    status, body, _ = await post(http, url, activity(conversation_id))
    assert status == 200

    edit_url = v3(connector, conversation_id, f"/activities/{body['id']}", encode=encode)
    async with http.put(edit_url, json=activity(conversation_id, "edited")) as response:
        assert response.status == 200

    connector.set_roster(conversation_id, [Member(id="29:u", name="U")])
    async with http.get(v3(connector, conversation_id, "/members", encode=encode)) as response:
        assert response.status == 200

    assert [r.conversation_id for r in connector.recorded] == [conversation_id] * 3
    assert connector.sent(conversation_id)[0].activity_id == body["id"]


async def test_encoded_slash_in_id_stays_in_the_id(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await post(http, v3(connector, "x/y", "/activities"), activity("x/y"))
    assert status == 200
    assert connector.sent()[0].conversation_id == "x/y"


# --------------------------------------------------------- scripted failures


async def test_scripted_429_with_retry_after_then_success(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.fail("conv-1", 429, retry_after=1, times=2)
    url = v3(connector, "conv-1", "/activities")

    for _ in range(2):
        status, body, headers = await post(http, url, activity("conv-1"))
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert body["error"]["code"] == "Throttled"
        assert body["error"]["message"]
    status, body, _ = await post(http, url, activity("conv-1"))
    assert status == 200

    assert [r.status for r in connector.recorded] == [429, 429, 200]
    assert [r.activity_id for r in connector.sent()] == [body["id"]]
    assert connector.counters.throttled == 2
    assert connector.counters.accepted == 1


async def test_scripts_queue_in_order_and_stay_per_conversation(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.fail("conv-1", 429, retry_after=0.5)
    connector.fail("conv-1", 503)

    other, _, _ = await post(http, v3(connector, "conv-2", "/activities"), activity("conv-2"))
    first, _, h1 = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    second, _, h2 = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    third, _, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))

    assert (other, first, second, third) == (200, 429, 503, 200)
    assert h1["Retry-After"] == "0.5"
    assert "Retry-After" not in h2


@pytest.mark.parametrize(
    ("status", "code", "expected_code"),
    [
        (403, None, "BotNotInConversationRoster"),
        (403, "BotDisabledByAdmin", "BotDisabledByAdmin"),
        (403, "ConversationBlockedByUser", "ConversationBlockedByUser"),
        (404, None, "ConversationNotFound"),
        (412, None, "PreconditionFailed"),
        (500, None, "ServiceError"),
        (502, None, "BadGateway"),
        (503, None, "ServiceUnavailable"),
        (504, None, "GatewayTimeout"),
    ],
)
async def test_error_bodies_have_the_connector_shape(
    connector: ConnectorStandIn,
    http: aiohttp.ClientSession,
    status: int,
    code: str | None,
    expected_code: str,
) -> None:
    connector.fail(TEAMS_PERSONAL_ID, status, code=code)

    got, body, headers = await post(
        http, v3(connector, TEAMS_PERSONAL_ID, "/activities"), activity(TEAMS_PERSONAL_ID)
    )

    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == {"error"}
    assert body["error"]["code"] == expected_code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert connector.counters.failed == {status: 1}


async def test_scripts_apply_to_updates_too(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    _, sent, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    connector.fail("conv-1", 412)
    url = v3(connector, "conv-1", f"/activities/{sent['id']}")
    async with http.put(url, json=activity("conv-1")) as response:
        assert response.status == 412
    async with http.put(url, json=activity("conv-1")) as response:
        assert response.status == 200


async def test_permanent_and_any_conversation_scripts(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.fail("blocked", 403, code="ConversationBlockedByUser", times=None)
    connector.fail(None, 503, times=2)

    statuses = [
        (await post(http, v3(connector, cid, "/activities"), activity(cid)))[0]
        for cid in ["blocked", "a", "b", "c", "blocked", "blocked"]
    ]

    assert statuses == [403, 503, 503, 200, 403, 403]
    connector.clear_failures()
    status, _, _ = await post(http, v3(connector, "blocked", "/activities"), activity("blocked"))
    assert status == 200


async def test_fail_all_is_an_outage_switch(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.set_roster("conv-1", [Member(id="29:u", name="U")])
    connector.fail_all(503, retry_after=2)

    status, body, headers = await post(
        http, v3(connector, "conv-1", "/activities"), activity("conv-1")
    )
    assert (status, body["error"]["code"], headers["Retry-After"]) == (
        503,
        "ServiceUnavailable",
        "2",
    )
    async with http.get(v3(connector, "conv-1", "/members")) as response:
        assert response.status == 503

    connector.fail_all(None)
    status, _, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    assert status == 200


async def test_slow_delays_only_that_conversation(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.slow("slow", 0.3)

    async def timed(cid: str) -> float:
        start = time.monotonic()
        status, _, _ = await post(http, v3(connector, cid, "/activities"), activity(cid))
        assert status == 200
        return time.monotonic() - start

    slow, fast = await asyncio.gather(timed("slow"), timed("fast"))
    assert slow >= 0.3
    assert fast < 0.3


async def test_invalid_bodies_are_400(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    url = v3(connector, "conv-1", "/activities")
    async with http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "BadSyntax"
    status, body, _ = await post(http, url, {"text": "no type"})
    assert (status, body["error"]["code"]) == (400, "MissingProperty")
    assert connector.sent() == []


# -------------------------------------------------------------- Teams limits


async def test_teams_limits_per_conversation_exact() -> None:
    clock = FrozenClock()
    limits = TeamsLimits(per_conversation=7.0, per_tenant=50.0)
    async with (
        ConnectorStandIn(teams_limits=limits, clock=clock) as connector,
        aiohttp.ClientSession() as http,
    ):
        url = v3(connector, "conv-1", "/activities")
        results = [await post(http, url, activity("conv-1", tenant="t1")) for _ in range(10)]

        assert [status for status, _, _ in results] == [200] * 7 + [429] * 3
        assert all(headers["Retry-After"] == "1" for _, _, headers in results[7:])
        assert results[7][1]["error"]["code"] == "Throttled"

        clock.now += 1 / 7  # exactly one token back
        assert (await post(http, url, activity("conv-1", tenant="t1")))[0] == 200
        assert (await post(http, url, activity("conv-1", tenant="t1")))[0] == 429

        stats = connector.stats()
        assert stats["accepted"] == 8
        assert stats["throttled"] == 4
        assert stats["perTenant"]["t1"] == {"accepted": 8, "updates": 0, "throttled": 4}


async def test_teams_limits_per_tenant_exact() -> None:
    clock = FrozenClock()
    async with (
        ConnectorStandIn(teams_limits=TeamsLimits(), clock=clock) as connector,
        aiohttp.ClientSession() as http,
    ):
        statuses = [
            (
                await post(
                    http,
                    v3(connector, f"conv-{i}", "/activities"),
                    activity(f"conv-{i}", tenant="t1"),
                )
            )[0]
            for i in range(60)
        ]
        assert statuses == [200] * 50 + [429] * 10

        # Another tenant has its own bucket; the tenant may also come from channelData.
        other = activity("conv-x", channel_tenant="t2")
        assert (await post(http, v3(connector, "conv-x", "/activities"), other))[0] == 200
        assert connector.sent()[-1].tenant_id == "t2"

        counters = connector.counters
        assert (counters.per_tenant["t1"].accepted, counters.per_tenant["t1"].throttled) == (50, 10)
        assert counters.per_tenant["t2"].accepted == 1


async def test_retry_after_comes_from_the_bucket() -> None:
    clock = FrozenClock()
    limits = TeamsLimits(per_conversation=100.0, per_tenant=0.25)  # one token every 4 s
    async with (
        ConnectorStandIn(teams_limits=limits, clock=clock) as connector,
        aiohttp.ClientSession() as http,
    ):
        url = v3(connector, "conv-1", "/activities")
        assert (await post(http, url, activity("conv-1")))[0] == 200
        status, _, headers = await post(http, url, activity("conv-1"))
        assert (status, headers["Retry-After"]) == (429, "4")
        clock.now += 2.5
        status, _, headers = await post(http, url, activity("conv-1"))
        assert (status, headers["Retry-After"]) == (429, "2")
        clock.now += 1.5
        assert (await post(http, url, activity("conv-1")))[0] == 200


async def test_teams_limits_with_real_clock() -> None:
    async with (
        ConnectorStandIn(teams_limits=TeamsLimits(7.0, 50.0)) as connector,
        aiohttp.ClientSession() as http,
    ):
        tenant_wide = await asyncio.gather(
            *(
                post(
                    http,
                    v3(connector, f"conv-{i}", "/activities"),
                    activity(f"conv-{i}", tenant="t1"),
                )
                for i in range(60)
            )
        )
        accepted = sum(1 for status, _, _ in tenant_wide if status == 200)
        assert 50 <= accepted <= 55  # refill while the burst is in flight adds a few at most
        assert all(status in (200, 429) for status, _, _ in tenant_wide)

        one_chat = await asyncio.gather(
            *(
                post(http, v3(connector, "chat", "/activities"), activity("chat", tenant="t2"))
                for _ in range(10)
            )
        )
        assert sum(1 for status, _, _ in one_chat if status == 200) in (7, 8)


# ---------------------------------------------------------------- auth


async def test_authorization_is_recorded(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": "Bearer abc.def.ghi"}
    await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"), headers=headers)
    await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))

    first, second = connector.sent()
    assert first.authorization == "Bearer abc.def.ghi"
    assert first.headers["Authorization"] == "Bearer abc.def.ghi"
    assert second.authorization is None


async def test_require_token() -> None:
    async with (
        ConnectorStandIn(require_token="s3cret") as connector,
        aiohttp.ClientSession() as http,
    ):
        url = v3(connector, "conv-1", "/activities")
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
            status, body, _ = await post(http, url, activity("conv-1"), headers=headers)
            assert (status, body["error"]["code"]) == (401, "Unauthorized")
        status, _, _ = await post(
            http, url, activity("conv-1"), headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200
        assert len(connector.sent()) == 1
        assert connector.counters.failed == {401: 3}


# ------------------------------------------------------- waiting and stats


async def test_wait_for_count_and_predicate(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    async def send_later() -> None:
        for i in range(3):
            await asyncio.sleep(0.01)
            await post(http, v3(connector, f"conv-{i}", "/activities"), activity(f"conv-{i}"))

    task = asyncio.create_task(send_later())
    sent = await connector.wait_for(2, timeout=5)
    assert len(sent) >= 2
    await connector.wait_for(lambda c: len(c.sent("conv-2")) == 1, timeout=5)
    await task

    with pytest.raises(TimeoutError, match="3 sent"):
        await connector.wait_for(4, timeout=0.05)
    assert connector._waiters == []


async def test_clear_reset_and_stats_over_http(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    for cid in ["a", "a", "b"]:
        await post(http, v3(connector, cid, "/activities"), activity(cid))
    connector.clear()
    assert connector.recorded == []
    assert connector.counters.accepted == 3

    async with http.get(connector.url + "/_stats") as response:
        stats = await response.json()
    assert stats["accepted"] == 3
    assert stats["perConversation"] == {"a": 2, "b": 1}
    assert stats["firstAcceptAt"] <= stats["lastAcceptAt"]

    async with http.post(connector.url + "/_reset") as response:
        assert response.status == 200
    assert connector.stats()["accepted"] == 0


async def test_stop_is_idempotent_and_url_needs_start() -> None:
    stand_in = ConnectorStandIn()
    with pytest.raises(RuntimeError):
        _ = stand_in.url
    await stand_in.start()
    assert stand_in.url.startswith("http://127.0.0.1:")
    assert stand_in.port != 0
    await stand_in.stop()
    await stand_in.stop()


# ----------------------------------------------------------- the SDK as client


async def test_botframework_sdk_talks_to_it(connector: ConnectorStandIn) -> None:
    """The SDK's own client gets ids, roster and ErrorResponseException codes it expects."""
    from botbuilder.schema import (
        Activity,
        ChannelAccount,
        ConversationAccount,
        ErrorResponseException,
    )
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    connector.add_member(
        TEAMS_CHANNEL_ID,
        Member(id="29:ada", name="Ada", aad_object_id="aad-ada", email="ada@contoso.com"),
    )
    message = Activity(
        type="message",
        text="hi",
        from_property=ChannelAccount(id="28:bot"),
        conversation=ConversationAccount(id=TEAMS_CHANNEL_ID, tenant_id="tenant-a"),
    )
    async with ConnectorClient(MicrosoftAppCredentials("", ""), base_url=connector.url) as client:
        conversations = client.conversations
        sent = await conversations.send_to_conversation(TEAMS_CHANNEL_ID, message)
        updated = await conversations.update_activity(TEAMS_CHANNEL_ID, sent.id, message)
        member = await conversations.get_conversation_member(TEAMS_CHANNEL_ID, "aad-ada")
        connector.fail(TEAMS_CHANNEL_ID, 403, code="ConversationBlockedByUser")
        with pytest.raises(ErrorResponseException) as raised:
            await conversations.send_to_conversation(TEAMS_CHANNEL_ID, message)

    assert updated.id == sent.id
    assert member.id == "29:ada"
    assert raised.value.response.status_code == 403
    assert raised.value.error.error.code == "ConversationBlockedByUser"
    # botbuilder-schema serialises conversation.tenantId as "tenantID"; both are understood.
    assert connector.sent()[0].tenant_id == "tenant-a"


# ------------------------------------------------------------- standalone


async def read_stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + "/_stats") as response:
        assert response.status == 200
        stats: dict[str, Any] = await response.json()
        return stats


@pytest.mark.parametrize("teams_limits", [False, True], ids=["sink", "teams-limits"])
async def test_standalone_sink(teams_limits: bool) -> None:
    args = ["--port", "0", "--quiet"] + (["--teams-limits"] if teams_limits else [])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.peers.connector",
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        assert line.startswith("LISTENING http://127.0.0.1:")
        url = line.split()[1]

        async with aiohttp.ClientSession() as http:
            base = URL(url)
            results = await asyncio.gather(
                *(
                    post(
                        http,
                        base / "v3/conversations/chat/activities",
                        activity("chat", tenant="t1"),
                    )
                    for _ in range(10)
                )
            )
            accepted = [body["id"] for status, body, _ in results if status == 200]
            assert len(accepted) in ((7, 8) if teams_limits else (10,))
            edit_url = URL(f"{url}/v3/conversations/chat/activities/{accepted[0]}")
            async with http.put(edit_url, json=activity("chat", "edited", tenant="t1")) as response:
                assert response.status in ((200, 429) if teams_limits else (200,))

            stats = await read_stats(http, url)
            assert stats["accepted"] == len(accepted)
            assert stats["throttled"] + stats["accepted"] + stats["updates"] == 11
            assert stats["perConversation"] == {"chat": len(accepted)}
            assert stats["perTenant"]["t1"]["accepted"] == len(accepted)
            assert stats["firstAcceptAt"] <= stats["lastAcceptAt"]

            async with http.post(url + "/_reset") as response:
                assert response.status == 200
            assert (await read_stats(http, url))["accepted"] == 0
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert stderr == b""  # --quiet: no access log


async def test_scripted_failure_can_be_slow(
    connector: ConnectorStandIn, http: aiohttp.ClientSession
) -> None:
    connector.fail("conv-1", 504, delay=0.2)
    start = time.monotonic()
    status, _, _ = await post(http, v3(connector, "conv-1", "/activities"), activity("conv-1"))
    assert status == 504
    assert time.monotonic() - start >= 0.2


async def test_counting_only_mode_keeps_no_bodies_but_can_be_awaited() -> None:
    async with ConnectorStandIn(record=False) as connector, aiohttp.ClientSession() as http:
        waiting = asyncio.create_task(connector.wait_for(5, timeout=5))
        for i in range(5):
            await post(http, v3(connector, f"conv-{i}", "/activities"), activity(f"conv-{i}"))
        await waiting
        assert connector.recorded == []
        assert connector.counters.accepted == 5
