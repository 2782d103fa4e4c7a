"""The APNs channel on its own against the APNs stand-in over TLS + HTTP/2 on loopback, with a
clock both share, for what takes an hour of real time: the provider token's lifetime, refreshes
and APNs' `ExpiredProviderToken`; and a token removal racing a new registration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from delivery.apns import ApnsChannel, ApnsConfig, ApnsTarget
from delivery.outbox import DeliveryJob
from notifications.event import StoredEvent
from storage.devices import DeviceRecord, DeviceRegistration
from storage.records import NotificationRecord
from storage.sqlite import SqliteDatabase
from storage.sqlite_devices import SqliteDeviceStore
from storage.sqlite_notifications import SqliteInboxStore
from tests.integration.devices import apns_token
from tests.peers.apns import ApnsStandIn


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
async def apns(tmp_path: Path, clock: Clock) -> AsyncIterator[ApnsStandIn]:
    async with ApnsStandIn(tmp_path / "apns", clock=clock) as standin:
        yield standin


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "herald.db")
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def channel(
    apns: ApnsStandIn, db: SqliteDatabase, clock: Clock, tmp_path: Path
) -> AsyncIterator[ApnsChannel]:
    config = ApnsConfig(
        key_file=apns.write_key(tmp_path / "AuthKey.p8"),
        key_id=apns.key_id,
        team_id=apns.team_id,
        bundle_id=apns.bundle_id,
        endpoint=apns.url,
        sandbox_endpoint=apns.url,
        ca_file=apns.ca_file,
    )
    made = ApnsChannel(
        SqliteDeviceStore(db), SqliteInboxStore(db, retention_seconds=86400), config, clock=clock
    )
    yield made
    await made.aclose()


def notification(nid: str = "n-1") -> NotificationRecord:
    now = time.time()
    event = StoredEvent.from_document(
        {"id": nid, "type": "case.assigned", "title": "Case 4711", "text": "Assigned to you.",
         "recipients": {"all": True}}
    )
    return NotificationRecord(nid, 1, "hash", event, "case.assigned", 1, 1, None, now, now)


def target(index: int, token: str | None = None) -> tuple[DeliveryJob, ApnsTarget]:
    now = time.time()
    job = DeliveryJob(index, "n-1", "ada", "mobile", f"iphone-{index}", 0, 0, None)
    device = DeviceRecord(
        f"iphone-{index}", "ada", "ios", None, token or apns_token(), {}, True, now, now
    )
    return job, ApnsTarget(device, None)


async def send_many(channel: ApnsChannel, count: int, start: int = 0) -> list[str]:
    results = await asyncio.gather(
        *(channel.send(*target(start + i), notification()) for i in range(count))
    )
    return [r.status for r in results]


async def test_one_provider_token_for_50_minutes_then_a_new_one(
    channel: ApnsChannel, apns: ApnsStandIn, clock: Clock
) -> None:
    assert await send_many(channel, 20) == ["delivered"] * 20
    clock.now += 49 * 60
    assert await send_many(channel, 5, 100) == ["delivered"] * 5
    assert len(apns.provider_tokens) == 1  # reused, never refreshed early
    clock.now += 2 * 60  # 51 minutes: replaced before APNs would call it expired
    assert await send_many(channel, 5, 200) == ["delivered"] * 5
    assert len(apns.provider_tokens) == 2
    assert channel.token.minted == 2
    assert apns.counters.rejected == {}  # no TooManyProviderTokenUpdates, no expiry
    first, second = apns.provider_tokens.values()
    assert second - first >= 50 * 60


async def test_expired_provider_token_makes_one_new_token_and_sends_again(
    channel: ApnsChannel, apns: ApnsStandIn, clock: Clock
) -> None:
    assert await send_many(channel, 3) == ["delivered"] * 3
    clock.now += 25 * 60
    apns.expire_provider_tokens()  # APNs now calls the token in use expired
    # Many pushes refused at once with the old token: one new token, every push sent again.
    assert await send_many(channel, 50, 100) == ["delivered"] * 50
    assert channel.token.minted == 2
    assert len(apns.provider_tokens) == 2
    assert channel.stats.token_refusals >= 1
    assert apns.counters.rejected.get("TooManyProviderTokenUpdates") is None


async def test_a_token_refused_again_within_20_minutes_is_not_replaced_but_retried_later(
    channel: ApnsChannel, apns: ApnsStandIn, clock: Clock
) -> None:
    assert await send_many(channel, 1) == ["delivered"]
    clock.now += 5 * 60
    apns.expire_provider_tokens()
    result = await channel.send(*target(7), notification())
    # Five minutes old: a new token now would be refused as TooManyProviderTokenUpdates.
    assert result.status == "retry" and result.reason == "ExpiredProviderToken"
    assert result.retry_after == pytest.approx(15 * 60, abs=2)
    assert channel.token.minted == 1
    clock.now += 15 * 60
    assert (await channel.send(*target(8), notification())).status == "delivered"
    assert channel.token.minted == 2


async def test_a_removal_never_takes_a_token_registered_since(
    channel: ApnsChannel, apns: ApnsStandIn, db: SqliteDatabase
) -> None:
    devices = SqliteDeviceStore(db)
    old, new = apns_token(), apns_token()
    await devices.upsert(DeviceRegistration("iphone-1", "ada", "ios", None, old, {}))
    job = DeliveryJob(1, "n-1", "ada", "mobile", "iphone-1", 0, 0, None)
    (loaded,) = (await channel.load([job])).values()  # leased and loaded with the old token
    apns.fail(old, "Unregistered")
    # Meanwhile the app registered the installation again, with a new token.
    await devices.upsert(DeviceRegistration("iphone-1", "ada", "ios", None, new, {}))
    result = await channel.send(job, loaded, notification())
    assert (result.status, result.reason) == ("dead", "Unregistered")
    await channel.retire(job, "Unregistered")
    device = await devices.get("iphone-1")
    assert device is not None and device.apns_token == new and device.active


async def test_badges_are_counted_once_per_batch(
    channel: ApnsChannel, db: SqliteDatabase
) -> None:
    devices = SqliteDeviceStore(db)
    jobs = []
    for index, user in enumerate(("ada", "grace", "ada")):
        await devices.upsert(
            DeviceRegistration(f"iphone-{index}", user, "ios", None, apns_token(), {})
        )
        jobs.append(DeliveryJob(index, "n-1", user, "mobile", f"iphone-{index}", 0, 0, None))
    loaded = await channel.load(jobs)
    assert {job_id: t.badge for job_id, t in loaded.items()} == {0: 0, 1: 0, 2: 0}
