"""Calls arriving while a batch is written go out together next; a failure fails its batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engagement.coalesce import Coalescer


async def test_calls_arriving_during_a_flush_share_the_next_one() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            await release.wait()
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush, batch=2, name="test")
    first = asyncio.create_task(coalescer.submit(1))
    for _ in range(3):  # a lone call goes out at once, waiting for no timer
        await asyncio.sleep(0)
    assert batches == [[1]]
    later = [asyncio.create_task(coalescer.submit(n)) for n in (2, 3, 4)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert batches == [[1]]  # they wait for the batch being written
    release.set()
    assert await first == 10
    assert [await task for task in later] == [20, 30, 40]
    assert batches == [[1], [2, 3], [4]]  # at most `batch` a statement


async def test_a_failed_flush_fails_only_its_own_calls() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise OSError("store down")
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(flush, batch=1, name="test")
    bad, good = coalescer.submit(13), coalescer.submit(7)
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], OSError)
    assert results[1] == 7
    with pytest.raises(OSError):
        await coalescer.submit(13)
