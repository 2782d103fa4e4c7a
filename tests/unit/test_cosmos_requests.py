"""What Herald sends to Cosmos DB, read off the wire.

The stand-in (`@vercel/cosmosdb-server`) does not enforce TTL or partition scoping, so what
those depend on is checked in the requests themselves: every Cosmos store is built as
`create_app` builds it (storage/backends.py, from Settings) and talks to the stand-in through
the recording proxy of tests/peers/cosmos_proxy.py, and the tests read the JSON bodies and
headers of the create-container, create-document and query requests.

- containers: partition key paths as DESIGN and issue 6 require (`/userId` for users and their
  preferences, conversation references, devices, push subscriptions and history; `/id` for
  notifications and deliveries), `defaultTtl: -1` (TTL on, only for documents that carry their
  own `ttl`) exactly on the containers whose documents expire, and none on the others;
- history (inbox) documents and delivery rows carry `ttl` = HERALD_HISTORY_DAYS * 86,400;
- a user's documents are written and read in that user's partition;
- every query is parameterised: no value a caller gave ever appears in the query text.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from delivery.outbox import NewDelivery
from notifications.event import StoredEvent
from storage.backends import Stores, stores_for
from storage.records import StoredReference, UserRecord
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer
from tests.peers.cosmos_proxy import CosmosProxy, Seen

HISTORY_DAYS = 7

EXPECTED_PARTITION_KEYS = {
    "users": "/userId",  # the user record holds the preferences document
    "conversations": "/userId",
    "devices": "/userId",
    "pushSubscriptions": "/userId",
    "inbox": "/userId",
    "graphSubscriptions": "/userId",
    "notifications": "/id",
    "deliveries": "/id",
}
EXPIRING = {"inbox", "deliveries", "graphChanges", "audienceMarks"}

# A user id as a caller might send it, with everything an injection would need.
HOSTILE = "emulator:o'brien\" OR 1=1 --"


@pytest.fixture
async def wire(
    cosmos_server: CosmosServer, azurite: AzuriteQueues, tmp_path: Path
) -> AsyncIterator[tuple[CosmosProxy, Stores, str]]:
    """Every store as storage/backends.py builds them for HERALD_STORE=cosmos, opened through
    the proxy."""
    name = f"w{uuid.uuid4().hex[:20]}"
    async with CosmosProxy(cosmos_server.endpoint, tmp_path) as proxy:
        settings = Settings.from_env(
            {
                "HERALD_DATA_DIR": str(tmp_path / "data"),
                "HERALD_STORE": "cosmos",
                "HERALD_QUEUE": "azure",
                "HERALD_HISTORY_DAYS": str(HISTORY_DAYS),
                "COSMOS_ENDPOINT": proxy.endpoint,
                "COSMOS_KEY": COSMOS_KEY,
                "COSMOS_DATABASE": name,
                "COSMOS_VERIFY_TLS": "false",
                "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
                "AZURE_STORAGE_QUEUE": name,
            },
            env_file=None,
        )
        stores = stores_for(settings)
        await stores.open()
        try:
            yield proxy, stores, name
        finally:
            from azure.storage.queue.aio import QueueServiceClient

            await stores.close()
            await _drop(proxy.endpoint, name)
            async with QueueServiceClient.from_connection_string(
                azurite.connection_string
            ) as service:
                for queue in (name, f"{name}-poison"):
                    await service.delete_queue(queue)


async def _drop(endpoint: str, name: str) -> None:
    from storage.cosmos import CosmosConfig, CosmosDatabase

    db = CosmosDatabase(CosmosConfig(endpoint=endpoint, key=COSMOS_KEY, database=name,
                                     verify_tls=False))
    await db.open()
    await db.drop()
    await db.close()


def created_containers(proxy: CosmosProxy, database: str) -> dict[str, dict[str, Any]]:
    return {
        s.body["id"]: s.body
        for s in proxy.requests("POST", rf"^/dbs/{database}/colls/?$")
        if s.status == 201
    }


def writes(proxy: CosmosProxy, container: str) -> list[Seen]:
    """Documents created (or upserted) in `container`, as sent."""
    return [
        s for s in proxy.requests("POST", rf"/colls/{container}/docs/?$", query=False)
        if s.status in (200, 201)
    ]


def partition_key(seen: Seen) -> Any:
    return json.loads(seen.headers["x-ms-documentdb-partitionkey"])


async def test_containers_are_created_with_their_partition_keys_and_ttl(
    wire: tuple[CosmosProxy, Stores, str],
) -> None:
    proxy, _, database = wire
    containers = created_containers(proxy, database)

    for name, path in EXPECTED_PARTITION_KEYS.items():
        assert containers[name]["partitionKey"]["paths"] == [path], name
        assert containers[name]["partitionKey"]["kind"] == "Hash"
    for name, body in containers.items():
        if name in EXPIRING:
            # On, with no default: only documents with their own `ttl` ever expire.
            assert body["defaultTtl"] == -1, name
        else:
            assert "defaultTtl" not in body, name
    assert set(containers) >= EXPIRING


async def test_history_entries_and_delivery_rows_carry_the_retention_as_ttl(
    wire: tuple[CosmosProxy, Stores, str],
) -> None:
    proxy, stores, _ = wire
    event = StoredEvent.from_document(
        {"id": "case-4711", "type": "case.assigned", "title": "Case 4711",
         "recipients": {"all": True}}
    )
    outcome, record = await stores.notifications.put(
        "case-4711", "hash-1", event, "case.assigned", 2
    )
    assert outcome == "created"
    now = time.time()
    await stores.queue.add_page(
        "case-4711",
        record.version,
        [
            NewDelivery("emulator:ada", "conversation", "t-ada", "queued", now),
            NewDelivery("emulator:grace", "conversation", "t-grace", "skipped", now, "muted"),
        ],
        ["emulator:ada", "emulator:grace"],
        None,
    )

    inbox = writes(proxy, "inbox")
    assert sorted(s.body["userId"] for s in inbox) == ["emulator:ada", "emulator:grace"]
    for seen in inbox:
        assert seen.body["ttl"] == HISTORY_DAYS * 86400
        assert partition_key(seen) == [seen.body["userId"]]
    deliveries = writes(proxy, "deliveries")
    assert len(deliveries) == 2
    for seen in deliveries:
        assert seen.body["ttl"] == HISTORY_DAYS * 86400
        assert partition_key(seen) == [seen.body["id"]]
    # Notifications themselves never expire: a status can always be read.
    (notification,) = writes(proxy, "notifications")
    assert "ttl" not in notification.body
    assert partition_key(notification) == [notification.body["id"]]


async def test_a_users_documents_live_in_that_users_partition(
    wire: tuple[CosmosProxy, Stores, str],
) -> None:
    proxy, stores, _ = wire
    await stores.users.upsert_user(UserRecord(HOSTILE, "emulator", "Ada"))
    _, etag = await stores.users.get_preferences(HOSTILE)
    await stores.users.put_preferences(HOSTILE, {"optedIn": True}, etag)
    reference = {"conversation": {"id": "c-1"}, "serviceUrl": "http://127.0.0.1:1/"}
    await stores.conversations.upsert(
        StoredReference(HOSTILE, "emulator", "c-1", "http://127.0.0.1:1/", reference)
    )

    (user,) = writes(proxy, "users")
    assert user.body["userId"] == HOSTILE and partition_key(user) == [HOSTILE]
    user_docs = [s for s in proxy.seen if re.search(r"/colls/users/docs/[0-9a-f]{64}", s.path)]
    assert user_docs, "preferences are read and written as the user's document"
    assert all(partition_key(s) == [HOSTILE] for s in user_docs)
    (conversation,) = writes(proxy, "conversations")
    assert conversation.body["userId"] == HOSTILE and partition_key(conversation) == [HOSTILE]
    assert (await stores.users.get_preferences(HOSTILE))[0] == {"optedIn": True}


async def test_queries_are_parameterised(wire: tuple[CosmosProxy, Stores, str]) -> None:
    proxy, stores, _ = wire
    await stores.users.upsert_user(UserRecord(HOSTILE, "emulator", "Ada"))
    # "n'1" breaks today's id rule: read leniently, as a stored row would be.
    event = StoredEvent.from_document(
        {"id": "n'1", "type": "case.assigned", "title": "t", "recipients": {"all": True}}
    )
    _, record = await stores.notifications.put("n'1", "hash-1", event, "case.assigned", 1)
    await stores.queue.add_page("n'1", record.version, [], [HOSTILE], None)
    proxy.seen.clear()

    # Every read a request for this user (or keyed by caller input) can make.
    assert await stores.users.get_user(HOSTILE) is not None
    assert await stores.users.resolve([HOSTILE, "grace@contoso.com"]) == {HOSTILE: HOSTILE}
    await stores.users.preferences_for([HOSTILE])
    await stores.users.user_id_page(HOSTILE, 10)
    await stores.conversations.for_users([HOSTILE])
    await stores.conversations.targets_for([HOSTILE])
    assert [e.notification_id for e in await stores.inbox.list(
        HOSTILE, unread_only=True, limit=10
    )] == ["n'1"]
    await stores.inbox.types(HOSTILE)
    await stores.inbox.changes(HOSTILE, 0.0, 10)
    assert await stores.inbox.mark_all_read(HOSTILE) == 1
    await stores.notifications.get_many(["n'1"])
    await stores.devices.for_user(HOSTILE)
    await stores.devices.targets_for([HOSTILE])
    await stores.subscriptions.for_user(HOSTILE)
    await stores.subscriptions.targets_for([HOSTILE])
    await stores.ledger.counters("n'1")

    queries = [s for s in proxy.seen if s.is_query]
    assert len(queries) >= 15
    for seen in queries:
        text = seen.body["query"]
        for value in (HOSTILE, "o'brien", "n'1", "grace@contoso.com"):
            assert value not in text, text
        names = set(re.findall(r"@\w+", text))
        assert names <= {p["name"] for p in seen.body["parameters"]}, text
    # The values went as parameters, unchanged.
    values = [p["value"] for s in queries for p in s.body["parameters"]]
    assert HOSTILE in values or any(isinstance(v, list) and HOSTILE in v for v in values)
    # History is read within the user's partition, not across all of them.
    inbox_queries = [s for s in queries if "/colls/inbox/" in s.path]
    assert inbox_queries
    assert all(partition_key(s) == [HOSTILE] for s in inbox_queries)
