"""Cosmos DB throttling (429) and unavailability (503) on a real socket.

A fault-injecting HTTPS proxy (tests/peers/cosmos_proxy.py) sits between Herald's Cosmos stores
and `@vercel/cosmosdb-server` and answers chosen requests as the service does when it throttles
(429, `x-ms-retry-after-ms`, substatus 3200) or is down (503), with Cosmos DB's error body.
What storage/cosmos.py promises is checked on the wire: a 429 is retried by the SDK after the
time the service asked for, a 503 by `_Retrying` (and once by the SDK), a query resumes, and
failures beyond the retry budget surface as `StoreUnavailable` — an API call then answers 503,
not 500 — after which everything works again once the service does.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.cosmos.exceptions import CosmosHttpResponseError

from errors import StoreUnavailable
from notifications.event import StoredEvent
from storage.cosmos import CosmosConfig, CosmosDatabase
from storage.cosmos_notifications import CosmosNotificationStore
from storage.cosmos_users import CosmosUserStore
from storage.records import UserRecord
from tests.harness import API_KEY, RunningHerald
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer
from tests.peers.cosmos_proxy import CosmosProxy, Seen

USERS_DOCS = r"/colls/users/docs/?$"
NOTIFICATIONS_DOCS = r"/colls/notifications/docs/?$"
RETRY_AFTER_MS = 50
# asyncio's sleeps may wake up to a clock tick early; the proxy stamps arrivals on the same clock.
TICK = 0.005


@pytest.fixture
async def proxy(cosmos_server: CosmosServer, tmp_path: Path) -> AsyncIterator[CosmosProxy]:
    async with CosmosProxy(cosmos_server.endpoint, tmp_path) as running:
        yield running


@pytest.fixture
async def db(proxy: CosmosProxy) -> AsyncIterator[CosmosDatabase]:
    """A database of the test's own, reached only through the proxy."""
    database = CosmosDatabase(
        CosmosConfig(
            endpoint=proxy.endpoint, key=COSMOS_KEY, database=f"f{uuid.uuid4().hex[:20]}",
            verify_tls=False,
        )
    )
    await database.open()
    yield database
    proxy.heal()
    await database.drop()
    await database.close()


def gaps(attempts: list[Seen]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(attempts)]


async def test_a_throttled_write_is_retried_after_the_time_cosmos_asks_for(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    fault = proxy.fail("POST", USERS_DOCS, 429, times=3, retry_after_ms=RETRY_AFTER_MS, query=False)

    started = time.monotonic()
    assert await users.upsert_user(UserRecord("emulator:ada", "emulator", "Ada")) is True
    took = time.monotonic() - started

    attempts = proxy.requests("POST", USERS_DOCS, query=False)
    assert [a.status for a in attempts] == [429, 429, 429, 201]
    assert len(fault.hits) == 3
    assert all(a.body["userId"] == "emulator:ada" for a in attempts)  # the same write each time
    assert all(gap >= RETRY_AFTER_MS / 1000 - TICK for gap in gaps(attempts)), gaps(attempts)
    assert took >= 3 * RETRY_AFTER_MS / 1000 - TICK
    assert took < 5.0  # the SDK's wait, not a backoff of seconds
    record = await users.get_user("emulator:ada")
    assert record is not None and record.name == "Ada"


async def test_a_throttled_query_is_retried_after_the_time_cosmos_asks_for(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    await users.upsert_user(UserRecord("emulator:ada", "emulator", "Ada"))
    proxy.fail("POST", USERS_DOCS, 429, times=2, retry_after_ms=RETRY_AFTER_MS, query=True)

    assert await users.resolve(["emulator:ada", "emulator:nobody"]) == {
        "emulator:ada": "emulator:ada"
    }

    attempts = proxy.requests("POST", USERS_DOCS, query=True)
    assert [a.status for a in attempts] == [429, 429, 200]
    assert all(gap >= RETRY_AFTER_MS / 1000 - TICK for gap in gaps(attempts)), gaps(attempts)


async def test_an_unavailable_service_is_retried_until_the_write_goes_through(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    notifications = CosmosNotificationStore(db)
    fault = proxy.fail("POST", NOTIFICATIONS_DOCS, 503, times=3, query=False)

    event = StoredEvent.from_document(
        {"id": "case-4711", "type": "case.assigned", "title": "Case 4711",
         "recipients": {"all": True}}
    )
    outcome, record = await notifications.put("case-4711", "hash-1", event, "case.assigned", 1)

    assert outcome == "created" and record.version == 1
    assert len(fault.hits) == 3
    attempts = proxy.requests("POST", NOTIFICATIONS_DOCS, query=False)
    assert [a.status for a in attempts] == [503, 503, 503, 201]
    stored = await notifications.get("case-4711")
    assert stored is not None and stored.version == 1


async def test_a_query_interrupted_by_503s_resumes(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    for name in ("ada", "grace", "linus"):
        await users.upsert_user(UserRecord(f"emulator:{name}", "emulator", name))
    fault = proxy.fail("POST", USERS_DOCS, 503, times=3, query=True)

    assert await users.user_id_page(None, 10) == [
        "emulator:ada", "emulator:grace", "emulator:linus"
    ]
    assert len(fault.hits) == 3
    assert proxy.requests("POST", USERS_DOCS, query=True)[-1].status == 200


async def test_a_service_that_stays_unavailable_raises_store_unavailable(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    await users.upsert_user(UserRecord("emulator:ada", "emulator", "Ada"))
    fault = proxy.fail("GET", r"/colls/users/docs/[0-9a-f]{64}/?$", 503, times=None)

    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await users.get_user("emulator:ada")
    took = time.monotonic() - started

    assert isinstance(caught.value.__cause__, CosmosHttpResponseError)
    assert caught.value.__cause__.status_code == 503
    # 5 tries by `_Retrying`, each retried once by the SDK (one region): 10 requests, ~4 s.
    assert len(fault.hits) == 10
    assert took < 15.0

    proxy.heal()
    record = await users.get_user("emulator:ada")
    assert record is not None and record.name == "Ada"


async def test_throttling_beyond_the_sdk_budget_raises_store_unavailable(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    fault = proxy.fail(
        "POST", USERS_DOCS, 429, times=None, retry_after_ms=RETRY_AFTER_MS, query=False
    )

    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await users.upsert_user(UserRecord("emulator:ada", "emulator", "Ada"))
    took = time.monotonic() - started

    assert isinstance(caught.value.__cause__, CosmosHttpResponseError)
    assert caught.value.__cause__.status_code == 429
    # The first try and the SDK's 9 retries, each after the 50 ms asked for; never retried
    # again on top of that by `_Retrying` (that would be 50 requests).
    assert len(fault.hits) == 10
    assert took >= 9 * RETRY_AFTER_MS / 1000 - TICK


async def test_a_query_that_keeps_failing_raises_store_unavailable(
    db: CosmosDatabase, proxy: CosmosProxy
) -> None:
    users = CosmosUserStore(db)
    fault = proxy.fail("POST", USERS_DOCS, 503, times=None, query=True)

    with pytest.raises(StoreUnavailable):
        await users.user_id_page(None, 10)
    # `pages()` tries 5 times; the SDK sends each query 4 times (3 retries 0.5 s apart on a
    # 503): 20 requests, ~10 s.
    assert len(fault.hits) == 20


@pytest.mark.timeout(180)
async def test_the_api_answers_503_while_cosmos_is_down_and_recovers_by_itself(
    proxy: CosmosProxy, azurite: AzuriteQueues, tmp_path: Path
) -> None:
    name = f"a{uuid.uuid4().hex[:20]}"
    herald = RunningHerald(
        tmp_path / "data",
        {
            "HERALD_STORE": "cosmos",
            "HERALD_QUEUE": "azure",
            "COSMOS_ENDPOINT": proxy.endpoint,
            "COSMOS_KEY": COSMOS_KEY,
            "COSMOS_DATABASE": name,
            "COSMOS_VERIFY_TLS": "false",
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "AZURE_STORAGE_QUEUE": name,
        },
    )
    await herald.start()
    try:
        code, _ = await herald.request("GET", "/readyz", auth=False)
        assert code == 200
        for method in ("GET", "POST"):
            proxy.fail(method, r"/colls/notifications/docs", 503, times=None)
        event = {"id": "case-4711", "type": "case.assigned", "title": "Case 4711",
                 "recipients": {"all": True}}

        assert herald.http is not None
        async with herald.http.post(
            herald.url + "/api/notifications", json=event,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response:
            body = await response.json()
            assert response.status == 503, body
            assert body["error"]["code"] == "store_unavailable"
            assert response.headers["Retry-After"] == "5"

        proxy.heal()
        code, body = await herald.post_event(event)
        assert code == 202, body
        assert body["outcome"] == "created"
    finally:
        await herald.close()
        await _drop(proxy.endpoint, name)
        await _delete_queues(azurite.connection_string, name)


async def _drop(endpoint: str, name: str) -> None:
    database = CosmosDatabase(
        CosmosConfig(endpoint=endpoint, key=COSMOS_KEY, database=name, verify_tls=False)
    )
    await database.open()
    await database.drop()
    await database.close()


async def _delete_queues(connection_string: str, name: str) -> None:
    from azure.storage.queue.aio import QueueServiceClient

    async with QueueServiceClient.from_connection_string(connection_string) as service:
        for queue in (name, f"{name}-poison"):
            await service.delete_queue(queue)
