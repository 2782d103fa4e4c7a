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

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from botbuilder.core import Storage

from delivery.outbox import Outbox
from delivery.outbox_sqlite import SqliteOutbox
from storage.devices import DeviceStore
from storage.graph_subscriptions import (
    GraphChangeInbox,
    GraphResourceStore,
    GraphSubscriptionStore,
)
from storage.protocols import (
    ConversationStore,
    InboxStore,
    NotificationStore,
    PromptStore,
    UserStore,
)
from storage.sqlite import SqliteDatabase
from storage.sqlite_bot_state import SqliteBotStorage
from storage.sqlite_conversations import SqliteConversationStore
from storage.sqlite_devices import SqliteDeviceStore
from storage.sqlite_graph import (
    SqliteGraphChangeInbox,
    SqliteGraphResourceStore,
    SqliteGraphSubscriptionStore,
)
from storage.sqlite_notifications import SqliteInboxStore, SqliteNotificationStore
from storage.sqlite_prompts import SqlitePromptStore
from storage.sqlite_subscriptions import SqliteSubscriptionStore
from storage.sqlite_users import SqliteUserStore
from storage.subscriptions import SubscriptionStore

__all__ = ["BACKENDS", "Backend"]

# Long enough that no test ever sees an entry expire unless it asks for a short retention.
DEFAULT_RETENTION_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Backend:
    """One backend's stores, sharing one database (as `create_app` wires them)."""

    name: str
    users: UserStore
    conversations: ConversationStore
    notifications: NotificationStore
    inbox: InboxStore
    outbox: Outbox
    bot_storage: Storage
    prompts: PromptStore
    subscriptions: SubscriptionStore
    devices: DeviceStore
    graph_subscriptions: GraphSubscriptionStore
    graph_changes: GraphChangeInbox
    graph_resources: GraphResourceStore
    # An inbox over the same data whose entries expire after the given number of seconds.
    inbox_with_retention: Callable[[float], InboxStore]
    # The shortest lease / retention (seconds) the backend honours exactly; waits are multiples.
    time_unit: float


BackendFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The embedded default: one SQLite file in WAL mode, as `create_app` opens it, except
    that commits skip the fsync (synchronous=NORMAL): power-loss durability is not what these
    tests check, and a fsync per commit would make the thousand-row tests several times slower."""
    db = SqliteDatabase(tmp_path / "herald.db", synchronous="NORMAL")
    await db.open()
    try:
        yield Backend(
            name="sqlite",
            users=SqliteUserStore(db),
            conversations=SqliteConversationStore(db),
            notifications=SqliteNotificationStore(db),
            inbox=SqliteInboxStore(db, retention_seconds=DEFAULT_RETENTION_SECONDS),
            outbox=SqliteOutbox(db),
            bot_storage=SqliteBotStorage(db),
            prompts=SqlitePromptStore(db),
            subscriptions=SqliteSubscriptionStore(db),
            devices=SqliteDeviceStore(db),
            graph_subscriptions=SqliteGraphSubscriptionStore(db),
            graph_changes=SqliteGraphChangeInbox(db),
            graph_resources=SqliteGraphResourceStore(db),
            inbox_with_retention=lambda seconds: SqliteInboxStore(db, retention_seconds=seconds),
            time_unit=0.1,
        )
    finally:
        await db.close()


BACKENDS = [
    pytest.param(sqlite_backend, id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, empty backend for each test."""
    factory: BackendFactory = request.param
    async with factory(request, tmp_path) as opened:
        yield opened
