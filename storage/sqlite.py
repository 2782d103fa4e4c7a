"""The embedded store's database: one SQLite file in WAL mode under the data directory.

aiosqlite runs each connection on its own thread. Herald keeps two: a writer that every write
goes through, serialised by an asyncio lock so that one coroutine's transaction never
interleaves with another's statements on the same connection, and a reader that, thanks to
WAL, sees the last committed state without waiting for writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

__all__ = ["SqliteDatabase"]

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]

# Ordered migrations; PRAGMA user_version records how many have been applied.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        user_id     TEXT PRIMARY KEY,
        name        TEXT,
        channel_id  TEXT NOT NULL,
        tenant_id   TEXT,
        prefs       TEXT,
        etag        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE aliases (
        alias       TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL
    );
    CREATE INDEX aliases_user ON aliases (user_id);
    CREATE TABLE conversations (
        user_id         TEXT NOT NULL,
        channel_id      TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        service_url     TEXT NOT NULL,
        tenant_id       TEXT,
        reference       TEXT NOT NULL,
        active          INTEGER NOT NULL DEFAULT 1,
        dead_reason     TEXT,
        updated_at      REAL NOT NULL,
        PRIMARY KEY (user_id, channel_id, conversation_id)
    );
    CREATE TABLE notifications (
        id                TEXT PRIMARY KEY,
        version           INTEGER NOT NULL,
        content_hash      TEXT NOT NULL,
        event             TEXT NOT NULL,
        type              TEXT NOT NULL,
        recipients        INTEGER NOT NULL,
        expanded_version  INTEGER NOT NULL DEFAULT 0,
        expand_cursor     TEXT,
        created_at        REAL NOT NULL,
        updated_at        REAL NOT NULL
    );
    CREATE INDEX notifications_pending ON notifications (updated_at)
        WHERE expanded_version < version;
    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        notification_id  TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        channel          TEXT NOT NULL,
        target           TEXT NOT NULL,
        status           TEXT NOT NULL,
        reason           TEXT,
        due_at           REAL NOT NULL,
        lease_until      REAL NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        sent_version     INTEGER NOT NULL DEFAULT 0,
        remote_id        TEXT,
        last_error       TEXT,
        updated_at       REAL NOT NULL,
        UNIQUE (notification_id, user_id, channel, target)
    );
    CREATE INDEX deliveries_due ON deliveries (due_at)
        WHERE status IN ('queued', 'retrying');
    CREATE INDEX deliveries_by_notification ON deliveries (notification_id, channel, status);
    CREATE TABLE inbox (
        user_id          TEXT NOT NULL,
        notification_id  TEXT NOT NULL,
        created_at       REAL NOT NULL,
        read_at          REAL,
        PRIMARY KEY (user_id, notification_id)
    );
    CREATE INDEX inbox_recent ON inbox (user_id, created_at DESC);
    CREATE TABLE bot_state (
        key       TEXT PRIMARY KEY,
        etag      TEXT NOT NULL,
        document  TEXT NOT NULL
    );
    """,
    # 2: answers to proactive prompts (latest answer wins), and prompts waiting for a dialog.
    """
    CREATE TABLE prompt_answers (
        notification_id  TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        choice           TEXT NOT NULL,
        answered_at      REAL NOT NULL,
        PRIMARY KEY (notification_id, user_id)
    );
    CREATE TABLE pending_prompts (
        conversation_key TEXT NOT NULL,
        notification_id  TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        text             TEXT NOT NULL,
        choices          TEXT NOT NULL,
        queued_at        REAL NOT NULL,
        PRIMARY KEY (conversation_key, notification_id)
    );
    """,
    # 3: browser push subscriptions (issue 4) and mobile devices (issue 5).
    """
    CREATE TABLE push_subscriptions (
        id               TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL,
        endpoint         TEXT NOT NULL UNIQUE,
        p256dh           TEXT NOT NULL,
        auth             TEXT NOT NULL,
        expiration_time  REAL,
        user_agent       TEXT,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL
    );
    CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);
    CREATE TABLE devices (
        installation_id  TEXT PRIMARY KEY,
        user_id          TEXT NOT NULL,
        platform         TEXT NOT NULL,
        fcm_token        TEXT UNIQUE,
        apns_token       TEXT UNIQUE,
        metadata         TEXT NOT NULL,
        active           INTEGER NOT NULL DEFAULT 1,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL
    );
    CREATE INDEX devices_user ON devices (user_id);
    """,
    # 4: Microsoft Graph subscriptions, the inbox of change notifications between
    # Graph's 202 and their processing, and what Herald last saw of each watched event.
    """
    CREATE TABLE graph_subscriptions (
        user_id          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        resource         TEXT NOT NULL,
        allowed          INTEGER NOT NULL,
        client_state     TEXT NOT NULL,
        subscription_id  TEXT,
        expires_at       REAL,
        delta_link       TEXT,
        last_error       TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL NOT NULL DEFAULT 0,
        renew_wanted     INTEGER NOT NULL DEFAULT 0,
        renew_done       INTEGER NOT NULL DEFAULT 0,
        resync_wanted    INTEGER NOT NULL DEFAULT 0,
        resync_done      INTEGER NOT NULL DEFAULT 0,
        lease_until      REAL NOT NULL DEFAULT 0,
        lease_owner      TEXT,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        PRIMARY KEY (user_id, kind)
    );
    CREATE UNIQUE INDEX graph_subscriptions_by_id ON graph_subscriptions (subscription_id)
        WHERE subscription_id IS NOT NULL;
    CREATE TABLE graph_changes (
        id               INTEGER PRIMARY KEY,
        subscription_id  TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        payload          TEXT NOT NULL,
        dedupe_key       TEXT UNIQUE,
        received_at      REAL NOT NULL,
        due_at           REAL NOT NULL,
        lease_until      REAL NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        processed_at     REAL,
        last_error       TEXT
    );
    CREATE INDEX graph_changes_pending ON graph_changes (due_at) WHERE processed_at IS NULL;
    CREATE INDEX graph_changes_processed ON graph_changes (received_at)
        WHERE processed_at IS NOT NULL;
    CREATE TABLE graph_resources (
        user_id      TEXT NOT NULL,
        resource_id  TEXT NOT NULL,
        change_key   TEXT,
        summary      TEXT NOT NULL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (user_id, resource_id)
    );
    """,
    # 5: fair delivery (delivery/fairness.py). Each delivery names its rate-limit lane, its
    # priority class and its fair tag; jobs are leased in (priority, tag) order, skipping lanes
    # the worker already holds enough of. The index covers every column the lease filters on,
    # so skipping a backlogged lane reads the index only.
    """
    ALTER TABLE deliveries ADD COLUMN lane TEXT NOT NULL DEFAULT '';
    ALTER TABLE deliveries ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE deliveries ADD COLUMN tag REAL NOT NULL DEFAULT 0;
    DROP INDEX deliveries_due;
    CREATE INDEX deliveries_fair ON deliveries (priority, tag, due_at, lease_until, lane)
        WHERE status IN ('queued', 'retrying');
    """,
    # 6: audiences (issue 13): who an expansion has planned, per notification and version, so
    # a person named by two parts of an audience (two groups, a group and a team) is planned
    # once (DeliveryQueue.planned).
    """
    CREATE TABLE audience_marks (
        notification_id  TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        version          INTEGER NOT NULL,
        PRIMARY KEY (notification_id, user_id)
    );
    """,
    # 7: engagement (issue 14). Read and acknowledged are one state per (person, notification),
    # kept on the inbox entry with the surface it was first set on; a notification can be
    # recalled. The funnel counts a notification's entries (inbox_by_notification); a Teams
    # read receipt names a message by its activity id (deliveries_by_remote).
    """
    ALTER TABLE notifications ADD COLUMN recalled_at REAL;
    ALTER TABLE inbox ADD COLUMN read_via TEXT;
    ALTER TABLE inbox ADD COLUMN acknowledged_at REAL;
    ALTER TABLE inbox ADD COLUMN acknowledged_via TEXT;
    CREATE INDEX inbox_by_notification ON inbox (notification_id, created_at);
    CREATE INDEX deliveries_by_remote ON deliveries (target, remote_id)
        WHERE remote_id IS NOT NULL;
    """,
)


class SqliteDatabase:
    """A SQLite file with a serialised writer and a concurrent reader."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()
        await self._reader.execute("PRAGMA query_only = ON")

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        rows = await conn.execute_fetchall("PRAGMA user_version")
        current = int(next(iter(rows))[0])
        for number, script in enumerate(_MIGRATIONS[current:], start=current + 1):
            log.info("applying database migration %d to %s", number, self._path)
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def _require(self, conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("database is not open")
        return conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic write transaction; statements inside run on the writer only."""
        conn = self._require(self._writer)
        async with self._lock:
            try:
                # Inside the try: a cancelled await may still have its statement run on the
                # connection's thread (BEGIN or COMMIT), so the rollback below must follow it.
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                await asyncio.shield(self._rollback(conn))
                raise

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        """Roll back whatever is open; statements queue in order, so this runs after them."""
        # OperationalError: nothing was open (the BEGIN never ran, or the COMMIT did).
        with contextlib.suppress(sqlite3.OperationalError):
            await conn.execute("ROLLBACK")

    async def write(self, sql: str, params: Params = ()) -> int:
        """One statement, atomic on its own; returns the number of rows changed."""
        conn = self._require(self._writer)
        async with self._lock:
            cursor = await conn.execute(sql, params)
            count = cursor.rowcount
            await cursor.close()
            return count

    async def write_returning(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """One statement with RETURNING, atomic on its own."""
        conn = self._require(self._writer)
        async with self._lock:
            return list(await conn.execute_fetchall(sql, params))

    async def write_many(self, sql: str, rows: Iterable[Params]) -> None:
        """The same statement for many rows in one transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._require(self._reader).execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
