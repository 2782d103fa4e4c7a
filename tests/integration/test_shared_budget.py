"""One Teams tenant budget for every instance: the GCRA arithmetic on shared numbers, the
SharedBudget an instance keeps in front of it, and CosmosBudgetStore on `@vercel/cosmosdb-server`
with several reservers racing for one lane (as several instances do)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from delivery.budget import SharedBudget, SlotGrant, gcra_grant
from delivery.budget_cosmos import CosmosBudgetStore
from storage.cosmos import CosmosConfig, CosmosDatabase
from tests.peers.azure import COSMOS_KEY, CosmosServer


def assert_conforms(times: list[float], rate: float, capacity: float) -> None:
    ordered = sorted(times)
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            assert j - i + 1 <= capacity + rate * (ordered[j] - start) + 1e-6


def test_grants_are_a_burst_then_the_rate_and_respect_a_pause() -> None:
    slots, tat = gcra_grant(100.0, 0.0, 100.0, 60, rate=50.0, capacity=45.0)
    assert slots[:45] == [100.0] * 45  # the burst
    assert slots[45] == pytest.approx(100.02)
    assert_conforms(slots, 50.0, 45.0)
    more, _ = gcra_grant(tat, 0.0, 100.0, 10, rate=50.0, capacity=45.0)
    assert min(more) > max(slots) - 1e-9  # later reservations come after earlier ones
    paused, _ = gcra_grant(100.0, 105.0, 100.0, 3, rate=50.0, capacity=45.0)
    assert min(paused) >= 105.0


class _Store:
    """A BudgetStore in memory (the fake beside the Protocol), counting calls."""

    def __init__(self) -> None:
        self.tat = 0.0
        self.blocked = 0.0
        self.calls = 0

    async def reserve(
        self, lane: str, count: int, rate: float, capacity: float, now: float
    ) -> SlotGrant:
        self.calls += 1
        slots, self.tat = gcra_grant(self.tat, self.blocked, now, count, rate, capacity)
        return SlotGrant(tuple(slots))

    async def block(self, lane: str, until: float, tat: float) -> None:
        self.blocked = max(self.blocked, until)
        self.tat = max(self.tat, tat)


async def test_shared_budget_asks_the_store_only_when_it_has_work_and_no_slot() -> None:
    store = _Store()
    now = [1_000.0]
    ready: list[str] = []
    budget = SharedBudget(store, 40.0, 10.0, clock=lambda: now[0])
    budget.on_ready = ready.append
    assert budget.wait("t") is None  # nothing reserved yet: it asks
    assert budget.wait("t") is None  # one question at a time
    await asyncio.sleep(0.01)
    assert ready == ["t"] and store.calls == 1
    for _ in range(10):  # a quarter second of 40/s, all inside the burst
        assert budget.wait("t") == 0.0
        budget.take("t")
    assert budget.wait("t") is None
    await asyncio.sleep(0.01)
    assert store.calls == 2
    # Slots not used soon are dropped, never saved up into a burst.
    now[0] += 5.0
    assert budget.wait("t") is None
    await budget.aclose()


async def test_a_penalty_drops_reserved_slots_and_pauses_the_lane_everywhere() -> None:
    store = _Store()
    now = [1_000.0]
    budget = SharedBudget(store, 40.0, 10.0, clock=lambda: now[0])
    assert budget.wait("t") is None
    await asyncio.sleep(0.01)
    budget.penalize("t", 30.0)
    await asyncio.sleep(0.01)
    assert store.blocked == pytest.approx(1_030.0)
    assert budget.wait("t") is None  # its slots are gone; new ones come after the pause
    await asyncio.sleep(0.01)
    assert budget.wait("t") == pytest.approx(30.0)
    await budget.aclose()


@pytest.fixture
async def cosmos(cosmos_server: CosmosServer) -> AsyncIterator[CosmosDatabase]:
    db = CosmosDatabase(
        CosmosConfig(
            endpoint=cosmos_server.endpoint, key=COSMOS_KEY,
            database=f"b{uuid.uuid4().hex[:20]}", verify_tls=False,
        )
    )
    await db.open()
    try:
        yield db
    finally:
        await db.drop()
        await db.close()


async def test_instances_racing_for_one_lane_get_disjoint_slots_within_the_rate(
    cosmos: CosmosDatabase,
) -> None:
    """Four reservers (four instances) take 12 slots at a time, 10 times each, at the same
    moment: every slot is handed out once and together they never exceed 50/s with a burst of
    45 — the etag makes each reservation see the one before."""
    stores = [CosmosBudgetStore(cosmos) for _ in range(4)]
    now = 2_000_000.0

    async def instance(store: CosmosBudgetStore) -> list[float]:
        taken: list[float] = []
        for _ in range(10):
            grant = await store.reserve("msteams|contoso", 12, 50.0, 45.0, now)
            taken.extend(grant.slots)
        return taken

    results = await asyncio.gather(*(instance(store) for store in stores))
    slots = sorted(slot for taken in results for slot in taken)
    assert len(slots) == 480
    assert_conforms(slots, 50.0, 45.0)
    assert slots[-1] == pytest.approx(now + (480 - 45) / 50.0)  # no slot lost either
    other = await stores[0].reserve("msteams|fabrikam", 1, 50.0, 45.0, now)
    assert other.slots == (now,)  # another tenant has its own budget


async def test_a_pause_written_by_one_instance_holds_for_the_others(cosmos: CosmosDatabase) -> None:
    first, second = CosmosBudgetStore(cosmos), CosmosBudgetStore(cosmos)
    now = 3_000_000.0
    await first.reserve("msteams|contoso", 1, 50.0, 45.0, now)
    await first.block("msteams|contoso", now + 60.0, now + 60.0 + 44 / 50.0)
    grant = await second.reserve("msteams|contoso", 3, 50.0, 45.0, now + 1.0)
    assert min(grant.slots) >= now + 60.0
