"""The scaled-out store's database: one Azure Cosmos DB database, one container per kind of record.

`azure-cosmos` 4.x, async client only. Containers are created when missing (with a key; a
managed identity has no control-plane rights, so with one they must exist already) and
partitioned as DESIGN says: by `/userId` for what belongs to one person (users and their
preferences, conversation references, devices, push subscriptions, history, Graph
subscriptions and what Herald knows of their calendars), by `/id` where a record is found by its
own key (notifications, deliveries, aliases, bot state, Graph change notifications, the owners
of installations and push endpoints), and by what a
query groups on for the two small prompt containers and the marks of who an audience expansion
has planned (by notification).

Document ids are SHA-256 hashes of the record's key: keys come from channels and callers (`/`,
`#`, `?` and `\\` are not allowed in Cosmos DB ids, and a key may be longer than 255 bytes), and
every query filters on the plain fields stored beside the id, never on the id itself.

Every query is parameterised, scoped to one partition where the record's owner is known (and
filters on the partition key field in its SQL too, which the local stand-in needs), and read a
page at a time with continuation tokens.

Transient failures are retried: throttling (429) by the SDK, honouring `x-ms-retry-after-ms`
(up to 9 times); 503, 408 and 449 answers and failed connections by `_Retrying`, the proxy every
container is handed out through, a few times with exponential backoff (the SDK itself retries a
503 at most once, and only with endpoint discovery on). A query that fails mid-way resumes from
its last continuation token. When the failures outlast the retries (or the SDK's 429 budget),
the store raises `StoreUnavailable`, never the SDK's exception: the API answers 503.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from errors import StoreUnavailable

__all__ = [
    "CONTAINERS",
    "CosmosConfig",
    "CosmosDatabase",
    "bounded",
    "doc_id",
    "is_conflict",
    "is_not_found",
    "is_precondition_failed",
    "is_transient",
    "with_retries",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    partition_key: str
    ttl: bool = False
    """Documents may carry their own `ttl` (seconds); the container never expires others."""


CONTAINERS: Final[dict[str, ContainerSpec]] = {
    "users": ContainerSpec("/userId"),
    "aliases": ContainerSpec("/id"),
    "conversations": ContainerSpec("/userId"),
    "notifications": ContainerSpec("/id"),
    "inbox": ContainerSpec("/userId", ttl=True),
    "deliveries": ContainerSpec("/id", ttl=True),
    "botState": ContainerSpec("/id"),
    "promptAnswers": ContainerSpec("/notificationId"),
    "pendingPrompts": ContainerSpec("/conversationKey"),
    "pushSubscriptions": ContainerSpec("/userId"),
    "devices": ContainerSpec("/userId"),
    "deviceTokens": ContainerSpec("/id"),
    "owners": ContainerSpec("/id"),
    "graphSubscriptions": ContainerSpec("/userId"),
    "graphChanges": ContainerSpec("/id", ttl=True),
    "graphResources": ContainerSpec("/userId"),
    "rateBudgets": ContainerSpec("/id"),
    "audienceMarks": ContainerSpec("/notificationId", ttl=True),
}
"""Every container Herald uses, with its partition key path."""


def doc_id(*parts: str) -> str:
    """The document id of the record whose key is `parts` (hex SHA-256; see the module doc)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return int(code) if isinstance(code, int) else None


_TRANSIENT: Final = frozenset({408, 449, 503})
"""Statuses worth another try: timeout, retry-with, service unavailable (429: the SDK's)."""


def is_transient(exc: BaseException) -> bool:
    """A failure a retry may overcome: a transient status, or no answer at all."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return _status(exc) in _TRANSIENT


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("x-ms-retry-after-ms") if hasattr(headers, "get") else None
    try:
        return float(value) / 1000.0 if value is not None else None
    except ValueError:
        return None


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """What a failure the retries could not overcome becomes: the API answers it with 503."""
    return StoreUnavailable(f"Cosmos DB is not answering now ({_short_status(exc)}, retried)")


async def with_retries(
    call: Callable[[], Awaitable[T]], *, attempts: int = 5, base: float = 0.1, cap: float = 5.0
) -> T:
    """Run `call`, again after transient failures (exponential backoff with jitter).

    Raises `StoreUnavailable` when they persist, and for a 429 the SDK has already retried
    as long as it would; any other failure as it is."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if _status(exc) == 429:
                raise _unavailable(exc) from exc
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise _unavailable(exc) from exc
            delay = _retry_after(exc) or min(cap, base * 2 ** (attempt - 1))
            log.warning(
                "Cosmos DB: %s (attempt %d of %d); retrying in %.2f s",
                _status(exc) or type(exc).__name__, attempt, attempts, delay,
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
    raise AssertionError("unreachable")


class _Retrying:
    """A container proxy whose coroutine methods are retried on transient failures."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._container, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute  # query_items and friends: pages() resumes those

        @functools.wraps(attribute)
        async def retried(*args: Any, **kwargs: Any) -> Any:
            return await with_retries(lambda: attribute(*args, **kwargs))

        return retried


def is_not_found(exc: BaseException) -> bool:
    return _status(exc) == 404


def _short_status(exc: BaseException) -> str:
    return str(_status(exc) or type(exc).__name__)


def is_conflict(exc: BaseException) -> bool:
    return _status(exc) == 409


def is_precondition_failed(exc: BaseException) -> bool:
    return _status(exc) == 412


async def bounded(coros: Iterable[Awaitable[T]], limit: int = 32) -> list[T]:
    """Run awaitables with at most `limit` at once; results in the order given."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[T]) -> T:
        async with semaphore:
            return await awaitable

    return list(await asyncio.gather(*(one(c) for c in coros)))


@dataclass(frozen=True, slots=True)
class CosmosConfig:
    """Where the database is and how to sign in (a key, or a managed identity without one)."""

    endpoint: str
    key: str | None
    database: str = "herald"
    verify_tls: bool = True
    connection_timeout: float = 10.0

    def __repr__(self) -> str:  # the key is a secret
        return (
            f"CosmosConfig(endpoint={self.endpoint!r}, database={self.database!r}, "
            f"key={'***' if self.key else None})"
        )


class CosmosDatabase:
    """The Cosmos DB client, database and containers, opened once per process.

    Nothing touches the network before `open()`. Until it has succeeded, every store call
    raises `StoreUnavailable` (the API answers 503) and `check()` is False: Herald starts and
    stays up while Cosmos DB is unreachable, and `open()` is retried by the application.
    """

    def __init__(self, config: CosmosConfig) -> None:
        self.config = config
        self._client: Any = None
        self._credential: Any = None
        self._database: Any = None
        self._containers: dict[str, Any] = {}

    @property
    def is_open(self) -> bool:
        return self._database is not None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `CosmosClient`: TLS, timeouts and retries."""
        options: dict[str, Any] = {
            "connection_verify": self.config.verify_tls,
            "connection_timeout": self.config.connection_timeout,
            # Throttled (429) requests: the SDK waits x-ms-retry-after-ms, up to 9 times / 30 s.
            "retry_throttle_total": 9,
            "retry_throttle_backoff_max": 30,
            # Connections that could not be made: a few quick tries (then `_Retrying`'s).
            "retry_total": 3,
            "retry_backoff_factor": 0.2,
            "retry_backoff_max": 2,
            "user_agent_suffix": "herald",
        }
        if self.config.endpoint.startswith("http://"):
            # A local emulator over plain HTTP advertises https:// endpoints; do not follow them.
            options["enable_endpoint_discovery"] = False
        return options

    async def open(self) -> None:
        """Connect, and create the database and containers if missing (idempotent)."""
        if self.is_open:
            return
        from azure.cosmos import PartitionKey
        from azure.cosmos.aio import CosmosClient
        from azure.cosmos.exceptions import CosmosHttpResponseError

        credential: Any = self.config.key
        if not credential:
            # Managed identity (or any credential DefaultAzureCredential finds): only imported
            # when no key is configured.
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            credential = self._credential
        client = CosmosClient(self.config.endpoint, credential=credential, **self.client_options())
        try:
            await client.__aenter__()
            try:
                database = await client.create_database_if_not_exists(self.config.database)
            except CosmosHttpResponseError as exc:
                if _status(exc) != 403:
                    raise
                # Entra ID data-plane roles cannot create databases: use the existing one.
                database = client.get_database_client(self.config.database)
                await database.read()
            containers: dict[str, Any] = {}
            for name, spec in CONTAINERS.items():
                options: dict[str, Any] = {"partition_key": PartitionKey(path=spec.partition_key)}
                if spec.ttl:
                    options["default_ttl"] = -1  # on, but only for documents with their own ttl
                try:
                    containers[name] = await database.create_container_if_not_exists(
                        name, **options
                    )
                except CosmosHttpResponseError as exc:
                    if _status(exc) != 403:
                        raise
                    container = database.get_container_client(name)
                    await container.read()
                    containers[name] = container
            containers = {name: _Retrying(c) for name, c in containers.items()}
        except BaseException:
            await client.close()
            await self._close_credential()
            raise
        self._client = client
        self._database = database
        self._containers = containers
        log.info(
            "Cosmos DB database %r at %s is open (%d containers)",
            self.config.database, self.config.endpoint, len(containers),
        )

    async def _close_credential(self) -> None:
        if self._credential is not None:
            await self._credential.close()
            self._credential = None

    async def close(self) -> None:
        client, self._client = self._client, None
        self._database = None
        self._containers = {}
        if client is not None:
            await client.close()
        await self._close_credential()

    async def drop(self) -> None:
        """Delete the whole database (tests and tools; never called by Herald itself)."""
        if self._client is not None:
            await self._client.delete_database(self.config.database)

    async def check(self) -> bool:
        """Whether the database answers now (for /readyz), within 5 seconds."""
        if self._database is None:
            return False
        try:
            await asyncio.wait_for(self._database.read(), 5.0)
        except Exception:
            return False
        return True

    def container(self, name: str) -> Any:
        """The container proxy; `StoreUnavailable` until the database is open."""
        try:
            return self._containers[name]
        except KeyError:
            if name not in CONTAINERS:
                raise
            raise StoreUnavailable("Cosmos DB is not reachable yet") from None

    # --- small helpers every Cosmos store uses ---------------------------------------------

    async def read(self, container: str, item_id: str, partition_key: str) -> dict[str, Any] | None:
        """A point read; None if there is no such document."""
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        try:
            item: dict[str, Any] = await self.container(container).read_item(
                item_id, partition_key=partition_key
            )
        except CosmosResourceNotFoundError:
            return None
        return item

    async def create(self, container: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Insert; None if a document with that id exists already (insert-or-ignore)."""
        from azure.cosmos.exceptions import CosmosResourceExistsError

        try:
            item: dict[str, Any] = await self.container(container).create_item(body)
        except CosmosResourceExistsError:
            return None
        return item

    async def delete(self, container: str, item_id: str, partition_key: str, **kwargs: Any) -> bool:
        """Delete; False if it was not there (or, with an etag, had changed: see kwargs)."""
        from azure.cosmos.exceptions import CosmosHttpResponseError

        try:
            await self.container(container).delete_item(
                item_id, partition_key=partition_key, **kwargs
            )
        except CosmosHttpResponseError as exc:
            if _status(exc) in (404, 412):
                return False
            raise
        return True

    async def pages(
        self,
        container: str,
        sql: str,
        params: Params | None = None,
        *,
        partition_key: str | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A parameterised query, one page (continuation) at a time; cross-partition unless a
        partition key is given."""
        options: dict[str, Any] = {"max_item_count": page_size}
        if partition_key is not None:
            options["partition_key"] = partition_key
        parameters = [{"name": k, "value": v} for k, v in (params or {}).items()]
        continuation: str | None = None
        failures = 0
        while True:
            pager = self.container(container).query_items(
                sql, parameters=parameters, **options
            ).by_page(continuation)
            try:
                async for page in pager:
                    items = [item async for item in page]
                    continuation = pager.continuation_token
                    failures = 0
                    yield items
                return
            except Exception as exc:
                failures += 1
                if _status(exc) == 429 or (failures >= 5 and is_transient(exc)):
                    raise _unavailable(exc) from exc
                if not is_transient(exc):
                    raise
                log.warning("Cosmos DB query interrupted (%s); resuming", _short_status(exc))
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))

    async def query(
        self,
        container: str,
        sql: str,
        params: Params | None = None,
        *,
        partition_key: str | None = None,
        page_size: int = 500,
    ) -> list[dict[str, Any]]:
        """Every result of a query (callers keep result sets small: one user, one key list)."""
        found: list[dict[str, Any]] = []
        async for page in self.pages(
            container, sql, params, partition_key=partition_key, page_size=page_size
        ):
            found.extend(page)
        return found

    async def values(
        self,
        container: str,
        sql: str,
        params: Params | None = None,
        *,
        partition_key: str | None = None,
    ) -> list[Any]:
        """Every result of a `SELECT VALUE ...` query (scalars: counts, ids)."""
        found: list[Any] = []
        async for page in self.pages(container, sql, params, partition_key=partition_key):
            found.extend(page)
        return found

    async def query_in(
        self,
        container: str,
        sql: str,
        values: Sequence[Any],
        params: Params | None = None,
        *,
        name: str = "@keys",
        chunk: int = 500,
    ) -> list[dict[str, Any]]:
        """A query with `ARRAY_CONTAINS(@keys, ...)` run for `values` a chunk at a time."""
        unique = list(dict.fromkeys(values))
        found: list[dict[str, Any]] = []
        for i in range(0, len(unique), chunk):
            found.extend(
                await self.query(container, sql, {**(params or {}), name: unique[i : i + chunk]})
            )
        return found
