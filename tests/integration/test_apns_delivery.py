"""iOS pushes straight to APNs, end to end over real sockets: devices registered through the
API, events posted to Herald, pushes arriving at stand-ins of APNs' production and sandbox hosts
(TLS + HTTP/2 on 127.0.0.1, the ES256 provider token checked against the test key, headers and
payload size checked, Apple's error answers on demand). Nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery.apns import ApnsChannel
from delivery.mobile import MobilePush
from delivery.payload import collapse_id
from tests.conftest import ON_EVERY_BACKEND, HeraldFactory
from tests.harness import HeraldProcess, RunningHerald
from tests.integration.devices import apns_env, apns_token, device_body, fcm_env, register
from tests.peers.apns import ApnsStandIn
from tests.peers.fcm import FcmStandIn


@pytest.fixture
async def apns(tmp_path: Path) -> AsyncIterator[ApnsStandIn]:
    async with ApnsStandIn(tmp_path / "apns") as standin:
        yield standin


@pytest.fixture
async def sandbox(tmp_path: Path, apns: ApnsStandIn) -> AsyncIterator[ApnsStandIn]:
    """APNs' development host: the same key and certificate, another port."""
    async with ApnsStandIn(tmp_path / "sandbox", tls=apns.tls) as standin:
        standin.share_key(apns)
        yield standin


@pytest.fixture
async def ios_herald(
    herald_factory: HeraldFactory, apns: ApnsStandIn, sandbox: ApnsStandIn, tmp_path: Path
) -> RunningHerald:
    """Herald with APNs on (FCM off), its hosts the stand-ins; quick retries."""
    return await herald_factory(
        HERALD_RETRY_BASE_SECONDS="0.2", **apns_env(apns, tmp_path, sandbox)
    )


def ios_body(user: str, **overrides: Any) -> dict[str, Any]:
    """An iPhone registered the way the Dynamics plugin does: an APNs token only."""
    return device_body(user, platform="ios", fcm=None, apns=apns_token(), **overrides)


def event(recipients: Any, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "case.assigned",
        "title": "Case 4711 was assigned to you",
        "text": "Customer: Contoso. Priority: high.",
        "severity": "warning",
        "url": "https://crm.example.com/cases/4711",
        "recipients": recipients,
    }
    body.update(fields)
    return body


@ON_EVERY_BACKEND
async def test_iphones_with_only_an_apns_token_get_pushes(
    ios_herald: RunningHerald, apns: ApnsStandIn, sandbox: ApnsStandIn
) -> None:
    herald = ios_herald
    users = [f"emulator:user-{i}" for i in range(3)]
    store = {user: ios_body(user) for user in users}
    debug = ios_body(users[0], distribution="debug")  # a developer's build: sandbox only
    for body in (*store.values(), debug):
        await register(herald, body)
    # user-0 has two older notifications unread: the badge counts them with the new one.
    for older in ("old-1", "old-2"):
        code, _ = await herald.post_event(event({"users": [users[0]]}, id=older))
        assert code == 202
        await herald.wait_status(older)
    await apns.wait_for(2)
    apns.clear()
    sandbox.clear()

    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    code, _ = await herald.post_event(
        event(
            {"all": True},
            id="case-4711",
            urgency="high",
            expiresAt=expires.isoformat(),
            icon="https://crm.example.com/icon.png",
            data={"caseId": 4711, "customer": {"name": "Contoso"}, "aps": "not theirs"},
        )
    )
    assert code == 202
    status = await herald.wait_status("case-4711")
    assert status["channels"]["mobile"]["delivered"] == 4
    assert status["reasons"] == {}

    pushes = await apns.wait_for(3)
    assert sorted(p.token for p in pushes) == sorted(b["apnsToken"] for b in store.values())
    (dev,) = await sandbox.wait_for(1)
    assert dev.token == debug["apnsToken"]
    for push in [*pushes, dev]:
        headers = push.headers
        assert headers["apns-topic"] == "com.contoso.field"
        assert headers["apns-push-type"] == "alert"
        assert headers["apns-priority"] == "10"
        assert headers["apns-collapse-id"] == "case-4711"
        assert headers["apns-expiration"] == str(int(expires.timestamp()))
        aps = push.payload["aps"]
        assert aps["alert"] == {
            "title": "Case 4711 was assigned to you",
            "body": "Customer: Contoso. Priority: high.",
        }
        assert aps["thread-id"] == "case-4711"
        assert aps["mutable-content"] == 1
        assert aps["interruption-level"] == "time-sensitive"
        assert push.payload["herald.image"] == "https://crm.example.com/icon.png"
        assert push.payload["herald.url"] == "https://crm.example.com/cases/4711"
        assert push.payload["herald.id"] == "case-4711"
        assert push.payload["herald.version"] == "1"
        assert push.payload["caseId"] == "4711"
        assert json.loads(push.payload["customer"]) == {"name": "Contoso"}
    badges = {p.token: p.payload["aps"]["badge"] for p in [*pushes, dev]}
    assert badges[store[users[0]]["apnsToken"]] == 3  # two older unread ones and this one
    assert badges[debug["apnsToken"]] == 3
    assert badges[store[users[1]]["apnsToken"]] == 1
    # One provider token for everything, over connections that were kept and reused.
    assert len(apns.provider_tokens) == 1
    assert set(sandbox.provider_tokens) == set(apns.provider_tokens)
    assert apns.counters.connections <= 4


async def test_text_is_cut_to_fit_4_kb_and_the_push_is_sent(
    ios_herald: RunningHerald, apns: ApnsStandIn
) -> None:
    user = "emulator:ada"
    await register(ios_herald, ios_body(user))
    long_text = ("Lorem ipsum dolor sit amet. " * 150)[:3990] + "ü"
    code, _ = await ios_herald.post_event(
        event({"users": [user]}, id="long", text=long_text, data={"note": "x" * 300})
    )
    assert code == 202
    status = await ios_herald.wait_status("long")
    assert status["counters"]["delivered"] == 1
    (push,) = await apns.wait_for(1)
    assert 4000 < push.size <= 4096
    body = push.payload["aps"]["alert"]["body"]
    assert body.startswith("Lorem ipsum") and body.endswith("…")
    assert push.payload["note"] == "x" * 300  # the text gave way first
    assert apns.counters.rejected == {}


async def test_an_update_replaces_the_notification_on_the_phone(
    ios_herald: RunningHerald, apns: ApnsStandIn
) -> None:
    user = "emulator:ada"
    await register(ios_herald, ios_body(user))
    long_id = "build-" + "x" * 100  # longer than APNs' 64-byte collapse id
    for version, percent in ((1, 10), (2, 60)):
        code, _ = await ios_herald.post_event(
            event({"users": [user]}, id=long_id, title=f"Build: {percent}%", urgency="low")
        )
        assert code == 202
        await ios_herald.wait_status(
            long_id, lambda s, v=version: s["status"] == "completed" and s["version"] == v
        )
    pushes = await apns.wait_for(2)
    assert [p.payload["aps"]["alert"]["title"] for p in pushes] == ["Build: 10%", "Build: 60%"]
    assert [p.payload["herald.version"] for p in pushes] == ["1", "2"]
    assert {p.headers["apns-collapse-id"] for p in pushes} == {collapse_id(long_id)}
    assert {p.payload["aps"]["thread-id"] for p in pushes} == {collapse_id(long_id)}
    assert {p.headers["apns-priority"] for p in pushes} == {"5"}
    assert {p.payload["aps"]["interruption-level"] for p in pushes} == {"passive"}


@pytest.mark.parametrize("reason", ["BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"])
async def test_a_dead_token_is_removed_and_counted(
    ios_herald: RunningHerald, apns: ApnsStandIn, reason: str
) -> None:
    herald = ios_herald
    user = "emulator:ada"
    dead, fine = ios_body(user), ios_body(user)
    for body in (dead, fine):
        await register(herald, body)
    apns.fail(dead["apnsToken"], reason)
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1")
    assert status["channels"]["mobile"]["deadTargets"] == 1
    assert status["channels"]["mobile"]["delivered"] == 1
    assert status["reasons"] == {f"dead:{reason}": 1}
    assert apns.counters.rejected == {reason: 1}  # not retried
    code, device = await herald.request("GET", f"/api/devices/{dead['installationId']}")
    assert code == 200
    assert (device["apnsToken"], device["active"]) == (None, False)
    assert device["tokenRemoved"]["reason"] == reason
    assert device["appId"] == "com.contoso.field"  # the audit trail stays

    apns.clear()
    code, _ = await herald.post_event(event({"users": [user]}, id="n-2"))
    status = await herald.wait_status("n-2")
    assert status["counters"]["delivered"] == 1 and status["counters"]["deadTargets"] == 0
    assert apns.tokens() == [fine["apnsToken"]]


@pytest.mark.parametrize(
    "reason", ["TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown"]
)
async def test_too_many_requests_and_5xx_are_retried_with_backoff(
    ios_herald: RunningHerald, apns: ApnsStandIn, reason: str
) -> None:
    herald = ios_herald
    user = "emulator:ada"
    flaky, steady = ios_body(user), ios_body(user)
    await register(herald, flaky)
    await register(herald, steady)
    apns.fail(flaky["apnsToken"], reason, times=2)
    posted = time.monotonic()
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1", timeout=15)
    assert status["counters"]["delivered"] == 2
    assert status["counters"]["failed"] == status["counters"]["deadTargets"] == 0
    assert apns.counters.rejected == {reason: 2}
    (late,) = apns.for_token(flaky["apnsToken"])
    (early,) = apns.for_token(steady["apnsToken"])
    # Backoff from 0.2 s, doubling, each at least half its value: 0.1 + 0.2 at the least.
    assert late.at - posted >= 0.3
    assert early.at - posted < late.at - posted  # the other device was not held back


@ON_EVERY_BACKEND
async def test_a_token_updated_in_place_gets_the_next_push(
    ios_herald: RunningHerald, apns: ApnsStandIn
) -> None:
    herald = ios_herald
    user = "emulator:ada"
    body = ios_body(user)
    await register(herald, body)
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    await herald.wait_status("n-1")
    renewed = {**body, "apnsToken": apns_token(), "appVersion": "4.3.0"}
    answer = await register(herald, renewed)  # the same installation, a new token
    assert answer["apnsToken"] == renewed["apnsToken"] and answer["active"] is True
    code, _ = await herald.post_event(event({"users": [user]}, id="n-2"))
    assert code == 202
    status = await herald.wait_status("n-2")
    assert status["counters"]["delivered"] == 1
    assert apns.tokens() == [body["apnsToken"], renewed["apnsToken"]]
    _, devices = await herald.request("GET", f"/api/devices?userId={user}")
    assert [d["installationId"] for d in devices["items"]] == [body["installationId"]]


@pytest.mark.parametrize("prefer", ["apns", "fcm"])
async def test_a_device_with_both_tokens_gets_one_push_from_the_preferred_service(
    herald_factory: HeraldFactory, apns: ApnsStandIn, tmp_path: Path, prefer: str
) -> None:
    async with FcmStandIn() as fcm:
        herald = await herald_factory(
            HERALD_MOBILE_PREFER=prefer, **fcm_env(fcm, tmp_path), **apns_env(apns, tmp_path)
        )
        channel = herald.herald.channels.get("mobile")
        assert isinstance(channel, MobilePush) and channel.prefer == prefer
        user = "emulator:ada"
        both = device_body(user, platform="ios", apns=apns_token())
        android = device_body(user)
        iphone = ios_body(user)
        for body in (both, android, iphone):
            await register(herald, body)
        code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
        assert code == 202
        status = await herald.wait_status("n-1")
        assert status["channels"]["mobile"]["delivered"] == 3
        assert status["counters"]["skipped"] == 0
        await asyncio.sleep(0.2)  # nothing else arrives
        expected_apns = {iphone["apnsToken"]}
        expected_fcm = {android["fcmToken"]}
        (expected_apns if prefer == "apns" else expected_fcm).add(
            both["apnsToken"] if prefer == "apns" else both["fcmToken"]
        )
        assert sorted(apns.tokens()) == sorted(expected_apns)
        assert sorted(fcm.tokens()) == sorted(expected_fcm)


async def test_with_apns_only_fcm_devices_are_counted_not_dropped(
    ios_herald: RunningHerald, apns: ApnsStandIn
) -> None:
    user = "emulator:ada"
    iphone, android = ios_body(user), device_body(user)
    await register(ios_herald, iphone)
    await register(ios_herald, android)
    code, _ = await ios_herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await ios_herald.wait_status("n-1")
    assert status["channels"]["mobile"]["delivered"] == 1
    assert status["reasons"] == {"skipped:fcm-not-configured": 1}
    assert apns.tokens() == [iphone["apnsToken"]]


async def test_readyz_says_whether_apns_is_configured(
    herald: RunningHerald, ios_herald: RunningHerald
) -> None:
    code, off = await herald.request("GET", "/readyz")
    assert code == 200
    assert off["mobile"] == {"fcm": False, "apns": False, "prefer": "fcm"}
    code, on = await ios_herald.request("GET", "/readyz")
    assert code == 200
    assert on["mobile"] == {"fcm": False, "apns": True, "prefer": "fcm"}
    assert isinstance(ios_herald.herald.channels.get("mobile"), ApnsChannel)


async def test_apns_closing_its_connections_loses_no_push(
    ios_herald: RunningHerald, apns: ApnsStandIn
) -> None:
    herald = ios_herald
    bodies = [ios_body(f"emulator:user-{i:02d}") for i in range(30)]
    for body in bodies:
        await register(herald, body)
    code, _ = await herald.post_event(event({"all": True}, id="n-1"))
    await herald.wait_status("n-1")
    apns.goaway("Shutdown")  # APNs restarts a server: Herald connects again
    code, _ = await herald.post_event(event({"all": True}, id="n-2"))
    assert code == 202
    status = await herald.wait_status("n-2", timeout=15)
    assert status["counters"]["delivered"] == 30
    second = [p.token for p in apns.received if p.payload["herald.id"] == "n-2"]
    assert sorted(second) == sorted(b["apnsToken"] for b in bodies)
    assert apns.counters.connections >= 2  # a new one after the GOAWAY


async def test_restart_mid_broadcast_loses_nothing(tmp_path: Path, apns: ApnsStandIn) -> None:
    # Four sends in flight and a slow APNs: the broadcast takes ~2 s, so the kill lands in it.
    process = HeraldProcess(
        tmp_path / "data", {"HERALD_WORKERS": "4", **apns_env(apns, tmp_path)}
    )
    await process.start()
    try:
        devices = 60
        tokens = set()
        for i in range(devices):
            body = ios_body(f"emulator:user-{i:03d}")
            tokens.add(body["apnsToken"])
            await register(process, body)
        apns.slow(0.1)
        code, _ = await process.post_event(event({"all": True}, id="crash-1"))
        assert code == 202
        await apns.wait_for(8, timeout=20)
        await process.kill()
        before = set(apns.tokens())
        assert len(before) < devices, "the kill came too late to test anything"

        apns.slow(0)
        await process.start()
        status = await process.wait_status("crash-1", timeout=30)
        assert status["channels"]["mobile"]["delivered"] == devices
        assert status["counters"]["queued"] == status["counters"]["retrying"] == 0
        assert set(apns.tokens()) == tokens
        # At-least-once: only sends in flight at the moment of the kill may repeat.
        assert len(apns.received) <= devices + 4
        # Each process made its own provider token; each was accepted.
        assert apns.counters.rejected == {}
    finally:
        await process.close()


async def test_a_bad_key_file_stops_start_up(
    herald_factory: HeraldFactory, apns: ApnsStandIn, tmp_path: Path
) -> None:
    env = apns_env(apns, tmp_path)
    broken = tmp_path / "broken.p8"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    for path in (broken, tmp_path / "missing.p8"):
        with pytest.raises(Exception, match="APNS_KEY_FILE"):
            await herald_factory(**{**env, "APNS_KEY_FILE": str(path)})
