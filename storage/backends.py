"""The one place that builds every store for a backend: app.py and the contract tests use it.

HERALD_STORE names the backend (config.py pairs each with its HERALD_QUEUE): `sqlite`, the
embedded default, or `cosmos`, Cosmos DB for the stores and the delivery ledger with Azure
Storage Queues for the delivery queue. `sqlite_stores` and `cosmos_stores` take an unopened
database (and queue), so tests can give them their own (a file per test, commits without fsync,
a database per test) and still get the stores exactly as Herald wires them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botbuilder.core import Storage

from config import Settings
from delivery.budget import BudgetStore
from delivery.ledger_sqlite import SqliteDeliveryLedger
from delivery.outbox import DeliveryLedger, DeliveryQueue
from delivery.outbox_sqlite import SqliteDeliveryQueue
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

if TYPE_CHECKING:  # the Azure SDKs are imported only when that backend is built
    from delivery.queue_azure import AzureDeliveryQueue
    from storage.cosmos import CosmosDatabase

__all__ = ["Stores", "cosmos_stores", "sqlite_stores", "stores_for"]


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store on the configured backend (HERALD_STORE, HERALD_QUEUE), and its lifecycle."""

    users: UserStore
    conversations: ConversationStore
    notifications: NotificationStore
    inbox: InboxStore
    queue: DeliveryQueue
    """The delivery jobs: the router and the worker write it, a recall re-queues through it."""
    ledger: DeliveryLedger
    """What became of each delivery, over the rows the queue writes: everyone else reads it."""
    bot_storage: Storage
    prompts: PromptStore
    subscriptions: SubscriptionStore
    devices: DeviceStore
    graph_subscriptions: GraphSubscriptionStore
    graph_changes: GraphChangeInbox
    graph_resources: GraphResourceStore
    budgets: BudgetStore | None
    """Where the instances share each Teams tenant's send budget (None: one instance, its
    budget in memory)."""
    open: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    check: Callable[[], Awaitable[dict[str, bool]]]
    """What /readyz reports: each part of the backend and whether it answers now."""
    description: str
    shared: bool
    """Several instances share it over the network: Herald starts (not ready) while it is
    unreachable, and polls it for work other instances queued."""
    inbox_with_retention: Callable[[float], InboxStore]
    """The history over the same data, its entries expiring after the given seconds (tests
    that let entries expire)."""
    sqlite: SqliteDatabase | None = None
    """The embedded database, when that is the backend (tests look into it)."""


def sqlite_stores(db: SqliteDatabase, *, retention_seconds: float) -> Stores:
    """The embedded backend: every store in one SQLite file (WAL), the delivery queue and its
    ledger too."""

    async def check() -> dict[str, bool]:
        try:
            await db.fetchone("SELECT 1")
        except Exception:
            return {"store": False}
        return {"store": True}

    return Stores(
        users=SqliteUserStore(db),
        conversations=SqliteConversationStore(db),
        notifications=SqliteNotificationStore(db),
        inbox=SqliteInboxStore(db, retention_seconds=retention_seconds),
        queue=SqliteDeliveryQueue(db),
        ledger=SqliteDeliveryLedger(db),
        bot_storage=SqliteBotStorage(db),
        prompts=SqlitePromptStore(db),
        subscriptions=SqliteSubscriptionStore(db),
        devices=SqliteDeviceStore(db),
        graph_subscriptions=SqliteGraphSubscriptionStore(db),
        graph_changes=SqliteGraphChangeInbox(db),
        graph_resources=SqliteGraphResourceStore(db),
        budgets=None,
        open=db.open,
        close=db.close,
        check=check,
        description=f"SQLite {db.path}",
        shared=False,
        inbox_with_retention=lambda seconds: SqliteInboxStore(db, retention_seconds=seconds),
        sqlite=db,
    )


def cosmos_stores(
    db: CosmosDatabase,
    queue: AzureDeliveryQueue,
    *,
    retention_seconds: float,
    max_dequeues: int = 5,
    description: str = "Cosmos DB and Azure Storage Queues",
) -> Stores:
    """Cosmos DB for every store and the delivery ledger, Azure Storage Queues for the queue
    (config.py refuses any other combination with cosmos). The SDKs are imported only here."""
    from delivery.budget_cosmos import CosmosBudgetStore
    from delivery.ledger_cosmos import CosmosDeliveryLedger
    from delivery.outbox_azure import AzureStorageDeliveryQueue
    from storage.cosmos_bot_state import CosmosBotStorage
    from storage.cosmos_conversations import CosmosConversationStore
    from storage.cosmos_devices import CosmosDeviceStore
    from storage.cosmos_graph import (
        CosmosGraphChangeInbox,
        CosmosGraphResourceStore,
        CosmosGraphSubscriptionStore,
    )
    from storage.cosmos_notifications import CosmosInboxStore, CosmosNotificationStore
    from storage.cosmos_prompts import CosmosPromptStore
    from storage.cosmos_subscriptions import CosmosSubscriptionStore
    from storage.cosmos_users import CosmosUserStore

    notifications = CosmosNotificationStore(db)
    deliveries = AzureStorageDeliveryQueue(
        db, queue, notifications,
        history_seconds=retention_seconds, max_dequeues=max_dequeues,
    )

    async def open_() -> None:
        await db.open()
        await deliveries.open()

    async def close() -> None:
        await deliveries.close()
        await db.close()

    async def check() -> dict[str, bool]:
        store, queued = await asyncio.gather(db.check(), deliveries.check())
        return {"store": store, "queue": queued}

    return Stores(
        users=CosmosUserStore(db),
        conversations=CosmosConversationStore(db),
        notifications=notifications,
        inbox=CosmosInboxStore(db, notifications, retention_seconds=retention_seconds),
        queue=deliveries,
        ledger=CosmosDeliveryLedger(db),
        bot_storage=CosmosBotStorage(db),
        prompts=CosmosPromptStore(db),
        subscriptions=CosmosSubscriptionStore(db),
        devices=CosmosDeviceStore(db),
        graph_subscriptions=CosmosGraphSubscriptionStore(db),
        graph_changes=CosmosGraphChangeInbox(db),
        graph_resources=CosmosGraphResourceStore(db),
        budgets=CosmosBudgetStore(db),
        open=open_,
        close=close,
        check=check,
        description=description,
        shared=True,
        inbox_with_retention=lambda seconds: CosmosInboxStore(
            db, notifications, retention_seconds=seconds
        ),
    )


def _sqlite_for(settings: Settings) -> Stores:
    return sqlite_stores(
        SqliteDatabase(settings.database_path),
        retention_seconds=settings.history_days * 86400,
    )


def _cosmos_for(settings: Settings) -> Stores:
    from delivery.queue_azure import AzureDeliveryQueue
    from storage.cosmos import CosmosConfig, CosmosDatabase

    db = CosmosDatabase(
        CosmosConfig(
            endpoint=settings.cosmos_endpoint,
            key=settings.cosmos_key.get_secret_value() or None,
            database=settings.cosmos_database,
            verify_tls=settings.cosmos_verify_tls,
        )
    )
    queue = AzureDeliveryQueue(
        settings.azure_storage_connection_string.get_secret_value(), settings.azure_storage_queue
    )
    return cosmos_stores(
        db,
        queue,
        retention_seconds=settings.history_days * 86400,
        max_dequeues=settings.queue_max_dequeues,
        description=(
            f"Cosmos DB {settings.cosmos_endpoint} (database {settings.cosmos_database!r}) and "
            f"Azure Storage queue {settings.azure_storage_queue!r}"
        ),
    )


# HERALD_STORE → how its stores are built (config.py pairs each with its HERALD_QUEUE).
_BACKENDS: dict[str, Callable[[Settings], Stores]] = {
    "sqlite": _sqlite_for,
    "cosmos": _cosmos_for,
}


def stores_for(settings: Settings) -> Stores:
    """The configured backend's stores, not yet opened (`Stores.open` at start-up)."""
    return _BACKENDS[settings.store](settings)
