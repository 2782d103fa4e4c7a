"""Crashes: Herald killed with SIGKILL mid-broadcast loses nothing after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Emulator, HeraldProcess
from tests.peers.connector import ConnectorStandIn

USERS = 40


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[HeraldProcess]:
    # Four sends in flight at a time and a slow connector: the broadcast takes ~1 s, so the
    # kill lands in the middle of it.
    herald = HeraldProcess(tmp_path / "data", {"HERALD_WORKERS": "4"})
    await herald.start()
    yield herald
    await herald.close()


async def test_kill_mid_broadcast_then_restart_delivers_to_everyone(
    process: HeraldProcess, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(process, connector.url)
    users = [emulator.user(f"user{i}") for i in range(USERS)]
    for user in users:
        assert await emulator.join(user) in (200, 201)
    await connector.wait_for(USERS)  # the welcomes
    connector.clear()
    connector.slow(None, 0.1)

    code, _ = await process.post_event(
        {"id": "crash-1", "type": "it.outage", "title": "Mail is down", "recipients": {"all": True}}
    )
    assert code == 202
    await connector.wait_for(8, timeout=20)
    await process.kill()
    before = {r.conversation_id for r in connector.sent()}
    assert len(before) < USERS, "the kill came too late to test anything"

    connector.slow(None, 0)
    await process.start()
    status = await process.wait_status("crash-1", timeout=30)
    assert status["counters"]["delivered"] == USERS
    assert status["counters"]["queued"] == status["counters"]["retrying"] == 0
    received = {r.conversation_id for r in connector.sent()}
    assert received == {u.conversation_id for u in users}
    # At-least-once: only sends in flight at the moment of the kill may repeat.
    assert len(connector.sent()) <= USERS + 4


async def test_event_accepted_just_before_a_crash_is_delivered_after_restart(
    process: HeraldProcess, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(process, connector.url)
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    connector.fail_all(503)  # nothing can be delivered before the crash
    code, _ = await process.post_event(
        {"id": "crash-2", "type": "it.outage", "title": "VPN is down", "recipients": {"all": True}}
    )
    assert code == 202
    await process.kill()
    connector.fail_all(None)
    await process.start()
    await process.wait_status("crash-2", timeout=30)
    assert [r.conversation_id for r in connector.sent()][-1] == user.conversation_id
