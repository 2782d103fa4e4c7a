"""Shared fixtures: real peers on loopback and Herald on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.harness import Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn

HeraldFactory = Callable[..., Awaitable[RunningHerald]]


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorStandIn]:
    async with ConnectorStandIn() as standin:
        yield standin


@pytest.fixture
async def herald_factory(tmp_path: Path) -> AsyncIterator[HeraldFactory]:
    started: list[RunningHerald] = []

    async def make(**env: str) -> RunningHerald:
        running = RunningHerald(tmp_path / f"data{len(started)}", env)
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
