"""Shared fixtures: real peers on loopback and Herald on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting, WebPushTestingServer

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
