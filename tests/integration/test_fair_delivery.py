"""Fair delivery (issue 12), end to end: `python app.py` against Bot Connector stand-ins that
enforce Teams' limits (50 requests/s per tenant, 7/s per conversation, 429 beyond).

- an urgent alert and a notification to another tenant posted during a broadcast reach their
  users at once, not after the broadcast (they used to wait 36 s and 35 s behind 2,000 people);
- a normal notification to a few people shares the tenant's budget with the broadcast;
- a tenant whose connector answers 429 for a minute does not slow another tenant;
- the status says why a notification waits (`waiting: tenant-rate`), /metrics per lane;
- SIGKILL mid-broadcast repeats at most the sends in flight (≤ HERALD_WORKERS).

Bounds are generous (a shared 2-core machine); bench/fairness.py measures the real numbers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import Activity

from proactive.identity import stored_reference, user_key
from storage.records import UserRecord
from storage.sqlite import SqliteDatabase
from storage.sqlite_conversations import SqliteConversationStore
from storage.sqlite_users import SqliteUserStore
from tests.harness import EmulatedUser, Emulator, HeraldProcess
from tests.peers.connector import ConnectorStandIn, Recorded, TeamsLimits

pytestmark = pytest.mark.slow


async def seed(data_dir: Path, users: Sequence[tuple[EmulatedUser, str]]) -> None:
    """People who opened a chat with the bot (user, service URL), written with Herald's own
    stores before it starts, as the benchmark does: thousands in a second, not one by one."""
    db = SqliteDatabase(data_dir / "herald.db", synchronous="OFF")
    await db.open()
    try:
        store, conversations = SqliteUserStore(db), SqliteConversationStore(db)
        for user, service_url in users:
            emulator = Emulator(None, service_url)  # type: ignore[arg-type]  # only builds JSON
            activity = Activity().deserialize(emulator.activity(user, "conversationUpdate"))
            key = user_key(activity)
            assert key is not None
            reference = stored_reference(activity, key)
            await store.upsert_user(
                UserRecord(user_id=key, channel_id=user.channel_id, tenant_id=user.tenant_id)
            )
            await conversations.upsert(reference)
    finally:
        await db.close()


def teams_users(tenant: str, n: int) -> list[EmulatedUser]:
    emulator = Emulator(None, "")  # type: ignore[arg-type]
    return [emulator.teams_user(f"{tenant}-{i}", tenant_id=tenant) for i in range(n)]


def with_title(records: Sequence[Recorded], title: str) -> list[Recorded]:
    return [r for r in records if title in json.dumps(r.body)]


@pytest.fixture
async def teams() -> AsyncIterator[ConnectorStandIn]:
    async with ConnectorStandIn(teams_limits=TeamsLimits()) as standin:
        yield standin


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[HeraldProcess]:
    herald = HeraldProcess(tmp_path / "data", {"HERALD_LOG_LEVEL": "INFO"})
    yield herald
    await herald.close()


async def post(process: HeraldProcess, event: dict[str, Any]) -> float:
    """POST an event; the monotonic time just before (the stand-in records arrival times on
    the same clock)."""
    started = time.monotonic()
    code, body = await process.post_event(event)
    assert code == 202, body
    return started


async def test_an_urgent_alert_and_another_tenant_do_not_wait_behind_a_broadcast(
    process: HeraldProcess, teams: ConnectorStandIn
) -> None:
    tenant_a = teams_users("tenant-a", 600)
    tenant_b = teams_users("tenant-b", 3)
    await seed(process.data_dir, [(u, teams.url) for u in tenant_a + tenant_b])
    await process.start()
    broadcast = {"id": "hr-all", "type": "hr.policy", "title": "New travel policy",
                 "recipients": {"users": [u.key for u in tenant_a]}}
    await post(process, broadcast)
    await teams.wait_for(lambda c: len(with_title(c.sent(), "New travel policy")) >= 100,
                         timeout=30)

    # While the broadcast uses tenant A's whole budget, the status says so.
    status = await process.status("hr-all")
    assert status["status"] == "delivering"
    assert status["waiting"] == "tenant-rate"
    assert status["waitingFor"]["tenant-rate"] > 0

    urgent_at = await post(process, {
        "id": "outage", "type": "it.outage", "title": "Mail server is down", "urgency": "high",
        "recipients": {"users": [tenant_a[-1].key]},
    })
    other_at = await post(process, {
        "id": "tenant-b-note", "type": "it.note", "title": "Your laptop is ready",
        "recipients": {"users": [tenant_b[0].key]},
    })
    small_at = await post(process, {
        "id": "team-note", "type": "team.note", "title": "Stand-up moved to 10:00",
        "recipients": {"users": [u.key for u in tenant_a[-5:]]},
    })
    await teams.wait_for(
        lambda c: len(with_title(c.sent(), "Mail server is down")) == 1
        and len(with_title(c.sent(), "Your laptop is ready")) == 1
        and len(with_title(c.sent(), "Stand-up moved to 10:00")) == 5,
        timeout=30,
    )
    urgent = with_title(teams.sent(), "Mail server is down")[0].at - urgent_at
    other = with_title(teams.sent(), "Your laptop is ready")[0].at - other_at
    small = max(r.at for r in with_title(teams.sent(), "Stand-up moved to 10:00")) - small_at
    remaining = 600 - len(with_title(teams.sent(), "New travel policy"))
    # Targets 1 s and 0.3 s (bench/fairness.py); the broadcast had ~8 s left to go.
    assert urgent < 2.5, urgent
    assert other < 2.0, other
    # Five normal messages share tenant A one-for-one with the broadcast: well before its end.
    assert small < 5.0, small
    assert remaining > 100, "the broadcast ended too early to show anything"

    done = await process.wait_status("hr-all", timeout=60)
    assert done["counters"]["delivered"] == 600
    assert done["waiting"] is None and done["waitingFor"] == {}
    assert teams.counters.throttled <= 3  # the budget is shared, never exceeded
    code, metrics = await process.request("GET", "/metrics", auth=False)
    assert code == 200
    assert 'herald_lane_wait_seconds_count{lane="msteams|tenant-a"}' in metrics


async def test_a_tenant_throttled_for_a_minute_does_not_slow_another(
    process: HeraldProcess,
) -> None:
    async with (
        ConnectorStandIn(teams_limits=TeamsLimits()) as slow_tenant,
        ConnectorStandIn(teams_limits=TeamsLimits()) as good_tenant,
    ):
        tenant_a = teams_users("tenant-a", 150)
        tenant_b = teams_users("tenant-b", 150)
        await seed(
            process.data_dir,
            [(u, slow_tenant.url) for u in tenant_a] + [(u, good_tenant.url) for u in tenant_b],
        )
        slow_tenant.fail_all(429, retry_after=60)
        await process.start()
        started = await post(process, {
            "id": "everyone", "type": "it.note", "title": "Maintenance tonight",
            "recipients": {"all": True},
        })
        await good_tenant.wait_for(150, timeout=30)
        last = max(r.at for r in good_tenant.sent())
        # 150 messages at 50/s after a burst of 45: ~2 s, not a minute.
        assert last - started < 10.0, last - started
        status = await process.wait_status(
            "everyone", lambda s: s["counters"]["delivered"] == 150, timeout=10
        )
        assert status["counters"]["retrying"] + status["counters"]["queued"] == 150
        assert status["waiting"] == "tenant-rate"
        # Tenant A was asked once per send in flight, then left alone for its Retry-After.
        assert len(slow_tenant.rejected()) <= 64


async def test_sigkill_mid_broadcast_repeats_at_most_the_sends_in_flight(
    tmp_path: Path, connector: ConnectorStandIn
) -> None:
    """2,000 Emulator users, 64 workers (the default): 216 and 121 people got a second card in
    two runs when results waited for a batch commit after the send."""
    emulator = Emulator(None, connector.url)  # type: ignore[arg-type]
    users = [emulator.user(f"user{i}") for i in range(2_000)]
    process = HeraldProcess(tmp_path / "data", {"HERALD_LOG_LEVEL": "WARNING"})
    try:
        await seed(process.data_dir, [(u, connector.url) for u in users])
        await process.start()
        await post(process, {"id": "crash-3", "type": "it.outage", "title": "Mail is down",
                             "recipients": {"all": True}})
        await connector.wait_for(600, timeout=60)
        await process.kill()
        before = len(connector.sent())
        assert before < 2_000, "the kill came too late to test anything"
        await process.start()
        status = await process.wait_status("crash-3", timeout=120)
        assert status["counters"]["delivered"] == 2_000
        per_conversation = Counter(r.conversation_id for r in connector.sent())
        assert set(per_conversation) == {u.conversation_id for u in users}
        repeats = sum(per_conversation.values()) - 2_000
        assert repeats <= 64, repeats
    finally:
        await process.close()
