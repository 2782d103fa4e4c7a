"""Shared fixtures: real peers on loopback and Herald on a real socket."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Emulator, RunningHerald
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting, WebPushTestingServer

HeraldFactory = Callable[..., Awaitable[RunningHerald]]


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorStandIn]:
    async with ConnectorStandIn() as standin:
        yield standin


@pytest.fixture
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings that choose Herald's backend: none (SQLite, the default), or, for tests
    parametrized with `ON_EVERY_BACKEND`, Cosmos DB (`@vercel/cosmosdb-server`) and Azure
    Storage Queues (`azurite`), with a database and queue of the test's own."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return {}
    cosmos: CosmosServer = request.getfixturevalue("cosmos_server")
    queues: AzuriteQueues = request.getfixturevalue("azurite")
    name = f"e{uuid.uuid4().hex[:20]}"
    return {
        "HERALD_STORE": "cosmos",
        "HERALD_QUEUE": "azure",
        "COSMOS_ENDPOINT": cosmos.endpoint,
        "COSMOS_KEY": COSMOS_KEY,
        "COSMOS_DATABASE": name,
        "COSMOS_VERIFY_TLS": "false",
        "AZURE_STORAGE_CONNECTION_STRING": queues.connection_string,
        "AZURE_STORAGE_QUEUE": name,
    }


ON_EVERY_BACKEND = pytest.mark.parametrize(
    "backend_env", ["sqlite", "cosmos+azurite"], indirect=True
)
"""Runs an end-to-end test on the embedded backend and on the scaled-out one."""


@pytest.fixture
async def herald_factory(
    tmp_path: Path, backend_env: dict[str, str]
) -> AsyncIterator[HeraldFactory]:
    started: list[RunningHerald] = []

    async def make(**env: str) -> RunningHerald:
        running = RunningHerald(tmp_path / f"data{len(started)}", {**backend_env, **env})
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.close()


@pytest.fixture
async def herald(herald_factory: HeraldFactory) -> RunningHerald:
    return await herald_factory()


@pytest.fixture
def emulator(herald: RunningHerald, connector: ConnectorStandIn) -> Emulator:
    return Emulator(herald, connector.url)


@pytest.fixture(scope="session")
def web_push_server() -> Iterator[str]:
    """web-push-testing (npm) on 127.0.0.1, one process for the session; its base URL."""
    with WebPushTestingServer() as server:
        yield server.url


@pytest.fixture
async def push_service(web_push_server: str) -> AsyncIterator[WebPushTesting]:
    """A client of the session's push service (subscribe, read decrypted pushes, expire)."""
    async with WebPushTesting(web_push_server) as client:
        yield client


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[CosmosServer]:
    """@vercel/cosmosdb-server (npm) on 127.0.0.1, one process for the session."""
    with CosmosServer() as server:
        yield server


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueues]:
    """azurite's Queue service (npm) on 127.0.0.1, one process for the session."""
    with AzuriteQueues() as server:
        yield server
