"""Scaled out: two `python app.py` processes sharing one Cosmos DB (`@vercel/cosmosdb-server`)
and one Azure Storage queue (`azurite`), sending through one Bot Connector stand-in.

A 1,000-recipient broadcast reaches every recipient exactly once with both instances sending;
with one of them killed (SIGKILL) mid-broadcast every recipient is still reached, and the only
repeats are sends the killed process had made but not yet recorded. A Herald whose Cosmos DB and
queue cannot be reached starts anyway, says so, answers /readyz 503 (and the API 503) until
they answer, and then becomes ready by itself.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import Activity

from proactive.identity import stored_reference, user_key
from storage.cosmos import CosmosConfig, CosmosDatabase, bounded
from storage.cosmos_conversations import CosmosConversationStore
from storage.cosmos_users import CosmosUserStore
from storage.records import StoredReference, UserRecord
from tests.harness import Emulator, HeraldProcess, free_port
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer
from tests.peers.connector import ConnectorStandIn, TeamsLimits

# Seeding and a 1,000-recipient broadcast through two processes and two single-threaded
# stand-ins take a while on two cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

USERS = 1_000
WORKERS = 16
LEASE_SECONDS = 5


def shared_settings(cosmos_endpoint: str, queue_connection: str, name: str) -> dict[str, str]:
    return {
        "HERALD_STORE": "cosmos",
        "HERALD_QUEUE": "azure",
        "COSMOS_ENDPOINT": cosmos_endpoint,
        "COSMOS_KEY": COSMOS_KEY,
        "COSMOS_DATABASE": name,
        "COSMOS_VERIFY_TLS": "false",
        "AZURE_STORAGE_CONNECTION_STRING": queue_connection,
        "AZURE_STORAGE_QUEUE": name,
        "HERALD_WORKERS": str(WORKERS),
        "HERALD_LEASE_SECONDS": str(LEASE_SECONDS),
        "HERALD_LOG_LEVEL": "INFO",
    }


@pytest.fixture
def shared(cosmos_server: CosmosServer, azurite: AzuriteQueues) -> dict[str, str]:
    name = f"s{uuid.uuid4().hex[:20]}"
    return shared_settings(cosmos_server.endpoint, azurite.connection_string, name)


@pytest.fixture
async def pair(
    tmp_path: Path, shared: dict[str, str]
) -> AsyncIterator[tuple[HeraldProcess, HeraldProcess]]:
    first = HeraldProcess(tmp_path / "a", shared)
    second = HeraldProcess(tmp_path / "b", shared)
    try:
        await first.start(timeout=60)
        await second.start(timeout=60)
        yield first, second
    finally:
        await first.close()
        await second.close()


async def seed(
    settings: dict[str, str], service_url: str, n: int, tenant: str | None = None
) -> list[StoredReference]:
    """N Emulator users (Teams users of `tenant` when given) and their conversation
    references, written with Herald's own stores (as if each had opened a chat with the bot)."""
    db = CosmosDatabase(
        CosmosConfig(
            endpoint=settings["COSMOS_ENDPOINT"],
            key=settings["COSMOS_KEY"],
            database=settings["COSMOS_DATABASE"],
            verify_tls=False,
        )
    )
    await db.open()
    users, conversations = CosmosUserStore(db), CosmosConversationStore(db)

    async def one(index: int) -> StoredReference:
        if tenant is None:
            activity = Activity().deserialize(
                {
                    "type": "conversationUpdate",
                    "id": f"seed-{index}",
                    "channelId": "emulator",
                    "serviceUrl": service_url,
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "from": {"id": str(uuid.uuid4()), "name": f"User {index}", "role": "user"},
                    "recipient": {"id": Emulator.BOT_ID, "name": "Herald", "role": "bot"},
                    "conversation": {"id": f"{uuid.uuid4()}|livechat"},
                    "locale": "en-US",
                }
            )
        else:
            emulator = Emulator(None, service_url)  # type: ignore[arg-type]  # builds JSON only
            user = emulator.teams_user(f"User {index}", tenant_id=tenant)
            activity = Activity().deserialize(emulator.activity(user, "conversationUpdate"))
        user_id = user_key(activity)
        assert user_id is not None
        reference = stored_reference(activity, user_id)
        await users.upsert_user(
            UserRecord(user_id=user_id, channel_id=reference.channel_id, tenant_id=tenant)
        )
        await conversations.upsert(reference)
        return reference

    try:
        references = await bounded((one(i) for i in range(n)), limit=32)
        assert await users.count() == n
    finally:
        await db.close()
    return references


def delivered_by(metrics: str) -> int:
    """herald_deliveries_total{channel="conversation",outcome="delivered"} of one instance."""
    for line in metrics.splitlines():
        if line.startswith("herald_deliveries_total{") and 'outcome="delivered"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def cards(connector: ConnectorStandIn) -> Counter[str]:
    """Successful sends per conversation (the seeded users get nothing but the broadcast)."""
    return Counter(r.conversation_id for r in connector.sent() if r.ok and r.conversation_id)


async def wait_sent(connector: ConnectorStandIn, count: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (sent := len(connector.sent())) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {sent} sends arrived")
        await asyncio.sleep(0.05)


def broadcast(notification_id: str, title: str) -> dict[str, Any]:
    return {"id": notification_id, "type": "it.outage", "title": title, "recipients": {"all": True}}


async def test_two_instances_share_a_broadcast_and_send_each_card_once(
    pair: tuple[HeraldProcess, HeraldProcess], shared: dict[str, str], connector: ConnectorStandIn
) -> None:
    first, second = pair
    references = await seed(shared, connector.url, USERS)

    code, body = await first.post_event(broadcast("scale-1", "Mail is down"))
    assert (code, body["recipients"]) == (202, USERS)
    status = await second.wait_status("scale-1", timeout=240)

    assert status["counters"]["delivered"] == USERS
    sent = cards(connector)
    assert set(sent) == {r.conversation_id for r in references}  # everybody
    duplicates = sum(sent.values()) - len(sent)
    assert duplicates == 0
    # Both instances took work from the one queue.
    by_instance = [
        delivered_by(str((await p.request("GET", "/metrics", auth=False))[1])) for p in pair
    ]
    assert sum(by_instance) == USERS
    assert all(n > 0 for n in by_instance), by_instance


async def test_one_instance_killed_mid_broadcast_still_reaches_everybody(
    pair: tuple[HeraldProcess, HeraldProcess], shared: dict[str, str], connector: ConnectorStandIn
) -> None:
    first, second = pair
    references = await seed(shared, connector.url, USERS)
    connector.slow(None, 0.05)  # sends take a while: some are in flight at the kill

    code, _ = await first.post_event(broadcast("scale-2", "VPN is down"))
    assert code == 202
    await wait_sent(connector, 250, timeout=120)
    await first.kill()
    # An upper bound of what the killed process had sent but not recorded: recorded after
    # the kill (final for it) is read first, the sends after (they can only have grown).
    recorded = (await second.status("scale-2"))["counters"]["delivered"]
    sent_at_kill = sum(cards(connector).values())
    unrecorded = sent_at_kill - recorded
    assert sent_at_kill < USERS, "the kill came too late to test anything"

    connector.slow(None, 0)
    status = await second.wait_status("scale-2", timeout=240)

    assert status["counters"]["delivered"] == USERS
    assert status["counters"]["queued"] == status["counters"]["retrying"] == 0
    sent = cards(connector)
    assert set(sent) == {r.conversation_id for r in references}
    duplicates = sum(sent.values()) - len(sent)
    # At-least-once: the only repeats are sends the killed instance made but never recorded.
    assert duplicates <= unrecorded, (duplicates, unrecorded)


TEAMS_RATE = 10
"""A tenant budget small enough that the Cosmos DB stand-in is not what limits the rate."""


def most_in_a_window(times: list[float], seconds: float) -> int:
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_instances_share_one_tenant_budget_and_it_moves_on_when_one_is_killed(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    """Each instance used to keep its own bucket: two sent twice Teams' rate (the stand-in
    answered 429s). Now the budget lives in Cosmos DB, shared, and a killed instance's share
    goes to the survivor."""
    settings = {**shared, "HERALD_TENANT_RATE": str(TEAMS_RATE)}
    first = HeraldProcess(tmp_path / "a", settings)
    second = HeraldProcess(tmp_path / "b", settings)
    users = 200
    async with ConnectorStandIn(
        teams_limits=TeamsLimits(per_tenant=TEAMS_RATE)
    ) as connector:
        try:
            await first.start(timeout=60)
            await second.start(timeout=60)
            references = await seed(shared, connector.url, users, tenant="contoso")
            code, _ = await first.post_event(broadcast("budget-1", "Quarterly results"))
            assert code == 202
            await wait_sent(connector, 60, timeout=120)
            by_instance = [
                delivered_by(str((await p.request("GET", "/metrics", auth=False))[1]))
                for p in (first, second)
            ]
            await first.kill()
            killed_at = asyncio.get_running_loop().time()
            status = await second.wait_status("budget-1", timeout=240)
            finished_at = asyncio.get_running_loop().time()
        finally:
            await first.close()
            await second.close()
        assert status["counters"]["delivered"] == users, json.dumps(status)
        sent = cards(connector)
        assert set(sent) == {r.conversation_id for r in references}  # nothing lost
        assert all(n > 0 for n in by_instance), by_instance  # both were sending
        # Never over the tenant's rate, both together: no window of a second holds more than
        # the burst plus a second's worth (two private buckets sent twice that and drew
        # dozens of 429s; a slot used a little late may still draw a rare one).
        accepted = [r.at for r in connector.sent()]
        assert most_in_a_window(accepted, 1.0) <= 2 * TEAMS_RATE
        assert connector.counters.throttled <= 3, connector.counters.throttled
        # The survivor used the whole budget: the rest went at about the tenant's rate.
        left = users - 60
        assert finished_at - killed_at < left / TEAMS_RATE * 2 + 15


async def test_unreachable_cosmos_and_queue_at_start_up_then_ready_when_they_answer(
    tmp_path: Path, connector: ConnectorStandIn
) -> None:
    cosmos_port, queue_port = free_port(), free_port()
    cosmos, queues = CosmosServer(), AzuriteQueues()
    cosmos.port, queues.port = cosmos_port, queue_port  # where they will be, not yet there
    settings = shared_settings(cosmos.endpoint, queues.connection_string, "late")
    herald = HeraldProcess(tmp_path / "data", settings)
    try:
        await herald.start(timeout=60, ready="/healthz")
        for _ in range(3):  # it stays up and says why it is not ready
            code, body = await herald.request("GET", "/readyz", auth=False)
            assert code == 503
            assert body["checks"]["store"] is False and body["checks"]["queue"] is False
            await asyncio.sleep(1)
        assert herald.process is not None and herald.process.returncode is None
        code, body = await herald.post_event(broadcast("early", "Too early"))
        assert code == 503 and body["error"]["code"] == "store_unavailable"
        log = herald.log.read_text()
        assert "cannot reach Cosmos DB" in log and "/readyz answers 503" in log
        assert "Traceback" not in log

        cosmos.start(cosmos_port)
        queues.start(queue_port)
        deadline = asyncio.get_running_loop().time() + 60
        while (await herald.request("GET", "/readyz", auth=False))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, herald.log.read_text()[-2000:]
            await asyncio.sleep(0.2)
        emulator = Emulator(herald, connector.url)
        user = emulator.user()
        assert await emulator.join(user) in (200, 201)
        await connector.wait_for(1)
        code, _ = await herald.post_event(
            {**broadcast("late", "Now it works"), "recipients": {"users": [user.key]}}
        )
        assert code == 202
        assert (await herald.wait_status("late", timeout=30))["counters"]["delivered"] == 1
    finally:
        await herald.close()
        cosmos.stop()
        queues.stop()
