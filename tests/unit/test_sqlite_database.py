"""The embedded database's transaction helper under cancellation (worker shutdown)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.sqlite import SqliteDatabase


@pytest.mark.parametrize("yields_before_cancel", range(8))
async def test_cancelling_a_transaction_never_leaves_it_open(
    tmp_path: Path, yields_before_cancel: int
) -> None:
    db = SqliteDatabase(tmp_path / "t.db")
    await db.open()
    try:
        await db.write("CREATE TABLE t (x INTEGER)")

        async def write() -> None:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (1)")
                await asyncio.sleep(0.01)

        task = asyncio.create_task(write())
        for _ in range(yields_before_cancel):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A transaction left open would make this BEGIN fail.
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (2)")
        rows = await db.fetchall("SELECT x FROM t ORDER BY x")
        assert [r["x"] for r in rows] in ([2], [1, 2])
    finally:
        await db.close()
