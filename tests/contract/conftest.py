"""The backends every contract test runs against.

Each suite in this folder is written once against the Protocols (storage/protocols.py,
delivery/outbox.py, botbuilder's `Storage`) and takes the `backend` fixture, which is
parametrized over every backend Herald ships. Adding a backend (Cosmos DB against
`@vercel/cosmosdb-server`, Azure Storage Queues against `azurite`) means writing one factory
below and adding one `pytest.param` to `BACKENDS`; a peer process it needs belongs in a
session-scoped fixture that the factory asks for with `request.getfixturevalue(...)`.
There is deliberately no switch that turns a backend's tests off.

Backends differ in how finely they keep time (Azure Storage Queues count visibility timeouts in
whole seconds, Cosmos DB TTLs too), so tests that must let a lease or a retention run out size
their waits from `Backend.time_unit` instead of hard-coding them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from delivery.queue_azure import AzureDeliveryQueue
from storage.backends import Stores, cosmos_stores, sqlite_stores
from storage.cosmos import CosmosConfig, CosmosDatabase
from storage.sqlite import SqliteDatabase
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer

__all__ = ["BACKENDS", "Backend"]

# Long enough that no test ever sees an entry expire unless it asks for a short retention.
DEFAULT_RETENTION_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Backend(Stores):
    """One backend's stores, sharing one database, built by storage/backends.py as
    `create_app` builds them; with a name for the test ids and its time unit."""

    name: str = ""
    # The shortest lease / retention (seconds) the backend honours exactly; waits are multiples.
    time_unit: float = 1.0


BackendFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The embedded default: one SQLite file in WAL mode, as `create_app` opens it, except
    that commits skip the fsync (synchronous=NORMAL): power-loss durability is not what these
    tests check, and a fsync per commit would make the thousand-row tests several times slower."""
    stores = sqlite_stores(
        SqliteDatabase(tmp_path / "herald.db", synchronous="NORMAL"),
        retention_seconds=DEFAULT_RETENTION_SECONDS,
    )
    await stores.open()
    try:
        yield _backend("sqlite", stores, time_unit=0.1)
    finally:
        await stores.close()


@asynccontextmanager
async def cosmos_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Scaled out: every store on Cosmos DB (`@vercel/cosmosdb-server`), the delivery ledger
    there too and the delivery queue on Azure Storage Queues (`azurite`). Each test gets a
    database and a queue of its own on the session's servers, removed afterwards."""
    server: CosmosServer = request.getfixturevalue("cosmos_server")
    queues: AzuriteQueues = request.getfixturevalue("azurite")
    name = f"t{uuid.uuid4().hex[:20]}"
    db = CosmosDatabase(
        CosmosConfig(endpoint=server.endpoint, key=COSMOS_KEY, database=name, verify_tls=False)
    )
    stores = cosmos_stores(
        db,
        AzureDeliveryQueue(queues.connection_string, name),
        retention_seconds=DEFAULT_RETENTION_SECONDS,
    )
    await stores.open()
    try:
        # Visibility timeouts are whole seconds.
        yield _backend("cosmos", stores, time_unit=1.0)
    finally:
        await db.drop()
        await stores.close()
        await _delete_queues(queues.connection_string, name)


def _backend(name: str, stores: Stores, *, time_unit: float) -> Backend:
    parts = {f.name: getattr(stores, f.name) for f in fields(stores)}
    return Backend(**parts, name=name, time_unit=time_unit)


async def _delete_queues(connection_string: str, name: str) -> None:
    from azure.storage.queue.aio import QueueServiceClient

    async with QueueServiceClient.from_connection_string(connection_string) as service:
        for queue in (name, f"{name}-poison"):
            await service.delete_queue(queue)


BACKENDS = [
    pytest.param(sqlite_backend, id="sqlite"),
    pytest.param(cosmos_backend, id="cosmos+azurite"),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, empty backend for each test."""
    factory: BackendFactory = request.param
    async with factory(request, tmp_path) as opened:
        yield opened
