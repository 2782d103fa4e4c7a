"""Fixtures for the browser tests (headless Chromium), and for the Microsoft Graph tests:
Entra ID and Graph stand-ins over TLS on loopback, and Herald configured to use them (time
driven by the test through a ManualClock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HeraldFactory
from tests.harness import RunningHerald, free_port
from tests.peers.chromium import Chromium
from tests.peers.graph import EntraStandIn, GraphStandIn, ManualClock
from tests.peers.tls import SelfSigned, self_signed


@pytest.fixture
async def chromium() -> AsyncIterator[Chromium]:
    """Headless Chromium for the page tests; nothing it loads may leave the machine."""
    async with Chromium() as browser:
        yield browser
        assert browser.blocked == []


@dataclass
class GraphPeers:
    tls: SelfSigned
    entra: EntraStandIn
    graph: GraphStandIn
    clock: ManualClock

    def env(self, port: int) -> dict[str, str]:
        """Herald's settings for these peers, serving on `port` (its public URL)."""
        return {
            "GRAPH_TENANT_ID": self.entra.tenant,
            "GRAPH_CLIENT_ID": self.entra.client_id,
            "GRAPH_CLIENT_SECRET": self.entra.client_secret,
            "GRAPH_AUTHORITY_HOST": self.entra.url,
            "GRAPH_BASE_URL": self.graph.base,
            "GRAPH_CA_FILE": str(self.tls.cert_file),
            "HERALD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
        }

    def drive(self, running: RunningHerald) -> RunningHerald:
        """Herald's Graph source on the test's clock (again after every restart)."""
        running.herald.graph.clock = self.clock.now
        return running


@pytest.fixture
async def graph_peers(tmp_path: Path) -> AsyncIterator[GraphPeers]:
    tls = self_signed(tmp_path / "tls")
    clock = ManualClock()
    async with (
        EntraStandIn(tls) as entra,
        GraphStandIn(tls, entra, clock=clock.now) as graph,
    ):
        yield GraphPeers(tls, entra, graph, clock)


@pytest.fixture
async def graph_herald(herald_factory: HeraldFactory, graph_peers: GraphPeers) -> RunningHerald:
    """Herald with Microsoft Graph configured against the stand-ins."""
    running = await herald_factory(**graph_peers.env(free_port()))
    return graph_peers.drive(running)
