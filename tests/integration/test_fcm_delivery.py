"""Mobile push end to end over real sockets: devices registered through the API, events posted
to Herald, messages arriving at a stand-in of the FCM HTTP v1 API whose OAuth token endpoint
the service account points at (firebase-admin's real credential flow, offline)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from delivery.fcm import FcmChannel, collapse_id
from storage.devices import DeviceRegistration
from storage.records import UserRecord
from tests.conftest import HeraldFactory
from tests.harness import Emulator, HeraldProcess, RunningHerald
from tests.integration.devices import apns_token, device_body, fcm_env, fcm_token, register
from tests.peers.connector import ConnectorStandIn
from tests.peers.fcm import FcmStandIn

pytestmark = pytest.mark.filterwarnings("error:Message.token is deprecated:DeprecationWarning")


@pytest.fixture
async def fcm() -> AsyncIterator[FcmStandIn]:
    async with FcmStandIn() as standin:
        yield standin


@pytest.fixture
async def mobile_herald(
    herald_factory: HeraldFactory, fcm: FcmStandIn, tmp_path: Path
) -> RunningHerald:
    """Herald with mobile push on, sending to the FCM stand-in."""
    return await herald_factory(**fcm_env(fcm, tmp_path))


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


def fcm_channel(herald: RunningHerald) -> FcmChannel:
    channel = herald.herald.channels.get("mobile")
    assert isinstance(channel, FcmChannel)
    return channel


async def test_broadcast_reaches_every_device_of_every_user(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    herald = mobile_herald
    users = [f"emulator:user-{i}" for i in range(3)]
    tokens: dict[str, str] = {}
    platforms = ("android", "ios", "web")
    for index, user in enumerate(users):
        for n in range(index + 1):  # 1, 2 and 3 devices
            body = device_body(user, platform=platforms[n])
            await register(herald, body)
            tokens[body["fcmToken"]] = platforms[n]
    # An iPhone registered with only its APNs token: counted, never silently dropped.
    await register(herald, device_body(users[0], platform="ios", fcm=None, apns=apns_token()))

    long_text = ("Lorem ipsum dolor sit amet. " * 150)[:3990] + "ü"  # with the rest, > 4 KB
    code, accepted = await herald.post_event(
        event(
            {"all": True},
            id="case-4711",
            text=long_text,
            urgency="high",
            icon="https://crm.example.com/icon.png",
            data={"caseId": 4711, "customer": {"name": "Contoso"}, "from": "reserved"},
        )
    )
    assert code == 202, accepted
    status = await herald.wait_status("case-4711")
    mobile = status["channels"]["mobile"]
    assert mobile["delivered"] == 6
    assert mobile["skipped"] == 1
    assert status["reasons"] == {"skipped:apns-not-configured": 1}

    received = await fcm.wait_for(6)
    assert Counter(r.token for r in received) == Counter(dict.fromkeys(tokens, 1))
    for push in received:
        message = push.message
        assert push.headers["Authorization"].startswith("Bearer ya29.")
        payload = {k: v for k, v in message.items() if k != "token"}
        size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
        assert 4000 < size <= 4096  # shortened to FCM's limit, not further
        note = message["notification"]
        assert note["title"] == "Case 4711 was assigned to you"
        assert note["body"].startswith("Lorem ipsum") and note["body"].endswith("…")
        data = message["data"]
        assert data["herald.id"] == "case-4711"
        assert data["herald.version"] == "1"
        assert data["herald.url"] == "https://crm.example.com/cases/4711"
        assert "from" not in data
        platform = tokens[push.token]
        if platform == "android":
            android = message["android"]
            assert android["priority"] == "high"
            assert android["collapse_key"] == android["notification"]["tag"] == "case-4711"
            assert android["notification"]["notification_priority"] == "PRIORITY_HIGH"
        elif platform == "ios":
            headers = message["apns"]["headers"]
            assert headers["apns-priority"] == "10"
            assert headers["apns-collapse-id"] == "case-4711"
            assert message["apns"]["fcm_options"]["image"] == "https://crm.example.com/icon.png"
        else:
            webpush = message["webpush"]
            assert webpush["headers"]["Urgency"] == "high"
            assert webpush["fcm_options"]["link"] == "https://crm.example.com/cases/4711"
    # The OAuth token was fetched once, from the stand-in, and reused.
    assert fcm.counters.tokens_issued == 1


async def test_data_is_sent_as_strings_when_the_text_is_short(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    user = "emulator:ada"
    await register(mobile_herald, device_body(user))
    data = {"caseId": 4711, "customer": {"name": "Contoso"}, "open": True, "note": "ok"}
    code, _ = await mobile_herald.post_event(event({"users": [user]}, id="d-1", data=data))
    assert code == 202
    (push,) = await fcm.wait_for(1)
    sent = push.message["data"]
    assert sent["caseId"] == "4711"
    assert json.loads(sent["customer"]) == {"name": "Contoso"}
    assert (sent["open"], sent["note"]) == ("true", "ok")
    assert push.message["android"]["priority"] == "normal"
    assert "notification_priority" not in push.message["android"]["notification"]


async def test_progress_updates_replace_each_other_on_the_device(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    user = "emulator:ada"
    body = device_body(user, platform="ios")
    await register(mobile_herald, body)
    long_id = "build-" + "x" * 100  # longer than APNs' 64-byte collapse id
    for version, percent in ((1, 10), (2, 60)):
        code, _ = await mobile_herald.post_event(
            event({"users": [user]}, id=long_id, title=f"Build: {percent}%", urgency="low")
        )
        assert code == 202
        await mobile_herald.wait_status(
            long_id, lambda s, v=version: s["status"] == "completed" and s["version"] == v
        )
    pushes = await fcm.wait_for(2)
    assert [p.message["notification"]["title"] for p in pushes] == ["Build: 10%", "Build: 60%"]
    assert [p.message["data"]["herald.version"] for p in pushes] == ["1", "2"]
    collapse = {p.message["apns"]["headers"]["apns-collapse-id"] for p in pushes}
    assert collapse == {collapse_id(long_id)}
    assert len(collapse_id(long_id).encode()) <= 64
    assert pushes[0].message["apns"]["headers"]["apns-priority"] == "5"


async def test_unregistered_and_sender_id_mismatch_remove_the_token(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    herald = mobile_herald
    user = "emulator:ada"
    gone, mismatched, fine = device_body(user), device_body(user), device_body(user)
    for body in (gone, mismatched, fine):
        await register(herald, body)
    fcm.fail(gone["fcmToken"], "UNREGISTERED")
    fcm.fail(mismatched["fcmToken"], "SENDER_ID_MISMATCH")

    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1")
    assert status["channels"]["mobile"]["deadTargets"] == 2
    assert status["channels"]["mobile"]["delivered"] == 1
    assert status["reasons"] == {"dead:UNREGISTERED": 1, "dead:SENDER_ID_MISMATCH": 1}
    for body, reason in ((gone, "UNREGISTERED"), (mismatched, "SENDER_ID_MISMATCH")):
        code, device = await herald.request("GET", f"/api/devices/{body['installationId']}")
        assert code == 200
        assert device["fcmToken"] is None
        assert device["active"] is False
        assert device["tokenRemoved"]["reason"] == reason
        assert device["appId"] == "com.contoso.field"  # the audit trail stays

    # The next notification goes to the one device left, and nowhere else.
    fcm.clear()
    code, _ = await herald.post_event(event({"users": [user]}, id="n-2"))
    status = await herald.wait_status("n-2")
    assert status["counters"]["delivered"] == 1
    assert status["counters"]["deadTargets"] == 0
    assert fcm.tokens() == [fine["fcmToken"]]

    # The app registers a fresh token: the installation is back.
    renewed = await register(herald, {**gone, "fcmToken": fcm_token()})
    assert renewed["active"] is True and renewed["tokenRemoved"] is None


async def test_invalid_argument_fails_that_token_once_and_not_the_others(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    herald = mobile_herald
    user = "emulator:ada"
    bad = device_body(user)
    others = [device_body(user) for _ in range(4)]
    for body in (bad, *others):
        await register(herald, body)
    fcm.fail(bad["fcmToken"], "INVALID_ARGUMENT", message="The registration token is not valid")
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1")
    assert status["channels"]["mobile"]["failed"] == 1
    assert status["channels"]["mobile"]["delivered"] == 4
    assert status["reasons"] == {"failed:INVALID_ARGUMENT: The registration token is not valid": 1}
    assert fcm.counters.rejected == {"INVALID_ARGUMENT": 1}  # tried once, not retried
    assert sorted(fcm.tokens()) == sorted(b["fcmToken"] for b in others)
    code, device = await herald.request("GET", f"/api/devices/{bad['installationId']}")
    assert device["active"] is True  # the token is kept: the message was refused, not it


@pytest.mark.parametrize("code", ["QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"])
async def test_transient_errors_are_retried_honouring_retry_after(
    mobile_herald: RunningHerald, fcm: FcmStandIn, code: str
) -> None:
    herald = mobile_herald
    user = "emulator:ada"
    flaky, steady = device_body(user), device_body(user)
    await register(herald, flaky)
    await register(herald, steady)
    fcm.fail(flaky["fcmToken"], code, times=2, retry_after=1)
    posted = time.monotonic()
    status_code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert status_code == 202
    status = await herald.wait_status("n-1", timeout=15)
    assert status["counters"]["delivered"] == 2
    assert status["counters"]["failed"] == status["counters"]["deadTargets"] == 0
    assert fcm.counters.rejected == {code: 2}
    (late,) = fcm.for_token(flaky["fcmToken"])
    (early,) = fcm.for_token(steady["fcmToken"])
    # Two refusals, each asking for a second: the third attempt came no sooner.
    assert late.at - posted >= 2.0
    assert early.at - posted < 1.0  # the other token was not held back


async def test_retries_without_retry_after_back_off(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    herald = mobile_herald
    user = "emulator:ada"
    body = device_body(user)
    await register(herald, body)
    fcm.fail(body["fcmToken"], "UNAVAILABLE", times=3)
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1", timeout=15)
    assert status["counters"]["delivered"] == 1
    assert fcm.counters.rejected == {"UNAVAILABLE": 3}


async def test_a_revoked_access_token_is_replaced_and_the_send_retried(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    herald = mobile_herald
    user = "emulator:ada"
    await register(herald, device_body(user))
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    await herald.wait_status("n-1")
    fcm.revoke_tokens()
    code, _ = await herald.post_event(event({"users": [user]}, id="n-2"))
    assert code == 202
    status = await herald.wait_status("n-2", timeout=15)
    assert status["counters"]["delivered"] == 1
    assert fcm.counters.unauthenticated >= 1
    assert fcm.counters.tokens_issued == 2


async def test_batches_over_500(
    herald_factory: HeraldFactory, fcm: FcmStandIn, tmp_path: Path
) -> None:
    herald = await herald_factory(HERALD_WORKERS="700", **fcm_env(fcm, tmp_path))
    stores = herald.herald
    users = [f"emulator:bulk-{i:04d}" for i in range(400)]
    tokens: set[str] = set()
    for user in users:
        await stores.users.upsert_user(UserRecord(user, "emulator"))
        for n in range(3):
            token = fcm_token()
            tokens.add(token)
            await stores.devices.upsert(
                DeviceRegistration(f"{user}-{n}", user, "android", token, None, {"appId": "x"})
            )
    code, _ = await herald.post_event(event({"all": True}, id="bulk"))
    assert code == 202
    status = await herald.wait_status("bulk", timeout=60)
    assert status["channels"]["mobile"]["delivered"] == 1200
    assert set(fcm.tokens()) == tokens and len(fcm.received) == 1200
    stats = fcm_channel(herald).stats
    assert stats.messages == 1200
    assert stats.largest_batch == 500  # full batches, never more
    assert stats.batches >= 3


async def test_restart_mid_broadcast_loses_nothing(tmp_path: Path, fcm: FcmStandIn) -> None:
    # Four sends in flight and a slow FCM: the broadcast takes ~2 s, so the kill lands in it.
    process = HeraldProcess(tmp_path / "data", {"HERALD_WORKERS": "4", **fcm_env(fcm, tmp_path)})
    await process.start()
    try:
        devices = 60
        tokens = set()
        for i in range(devices):
            body = device_body(f"emulator:user-{i:03d}")
            tokens.add(body["fcmToken"])
            await register(process, body)
        fcm.slow(0.1)
        code, _ = await process.post_event(event({"all": True}, id="crash-1"))
        assert code == 202
        await fcm.wait_for(8, timeout=20)
        await process.kill()
        before = set(fcm.tokens())
        assert len(before) < devices, "the kill came too late to test anything"

        fcm.slow(0)
        await process.start()
        status = await process.wait_status("crash-1", timeout=30)
        assert status["channels"]["mobile"]["delivered"] == devices
        assert status["counters"]["queued"] == status["counters"]["retrying"] == 0
        assert set(fcm.tokens()) == tokens
        # At-least-once: only sends in flight at the moment of the kill may repeat.
        assert len(fcm.received) <= devices + 4
    finally:
        await process.close()


async def test_a_device_registered_before_its_user_talked_to_the_bot_gets_pushes(
    mobile_herald: RunningHerald, fcm: FcmStandIn, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(mobile_herald, connector.url)
    person = emulator.user("Ada")
    body = device_body(person.key)
    await register(mobile_herald, body)  # the app first ...
    code, _ = await mobile_herald.post_event(event({"users": [person.key]}, id="n-1"))
    assert code == 202
    status = await mobile_herald.wait_status("n-1")
    assert status["counters"]["delivered"] == 1
    assert fcm.tokens() == [body["fcmToken"]]

    await emulator.join(person)  # ... then the chat: both are reached
    await connector.wait_for(1)
    code, _ = await mobile_herald.post_event(event({"users": [person.key]}, id="n-2"))
    status = await mobile_herald.wait_status("n-2")
    assert status["channels"]["mobile"]["delivered"] == 1
    assert status["channels"]["conversation"]["delivered"] == 1


async def test_mobile_preference_off_skips_the_devices(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    user = "emulator:ada"
    await register(mobile_herald, device_body(user))
    code, prefs = await mobile_herald.request("GET", f"/api/users/{user}/preferences")
    assert code == 200
    prefs["channels"]["mobile"] = False
    code, _ = await mobile_herald.request(
        "PUT", f"/api/users/{user}/preferences", json=prefs, headers={"If-Match": "*"}
    )
    assert code == 200
    code, _ = await mobile_herald.post_event(event({"users": [user]}, id="n-1"))
    status = await mobile_herald.wait_status("n-1")
    assert status["reasons"] == {"skipped:preference": 1}
    assert fcm.received == []


async def test_with_mobile_push_off_devices_are_counted_not_dropped(
    herald: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    assert herald.herald.channels.get("mobile") is None
    user = "emulator:ada"
    await register(herald, device_body(user))
    await register(herald, device_body(user, platform="ios", fcm=None, apns=apns_token()))
    code, _ = await herald.post_event(event({"users": [user]}, id="n-1"))
    assert code == 202
    status = await herald.wait_status("n-1")
    assert status["channels"]["mobile"]["skipped"] == 2
    assert status["reasons"] == {
        "skipped:fcm-not-configured": 1,
        "skipped:apns-not-configured": 1,
    }

    caplog.set_level("INFO", logger="herald")
    await herald.restart()
    assert any("mobile push (FCM) is off" in r.getMessage() for r in caplog.records)


async def test_two_heralds_in_one_process_keep_their_own_fcm_endpoint(
    herald_factory: HeraldFactory, tmp_path: Path
) -> None:
    async with FcmStandIn(project_id="one") as first, FcmStandIn(project_id="two") as second:
        a = await herald_factory(**fcm_env(first, tmp_path))
        b = await herald_factory(**fcm_env(second, tmp_path))
        for herald, name in ((a, "one"), (b, "two")):
            await register(herald, device_body(f"emulator:{name}"))
            code, _ = await herald.post_event(event({"all": True}, id=f"n-{name}"))
            assert code == 202
        await asyncio.gather(a.wait_status("n-one"), b.wait_status("n-two"))
        assert [p.message["data"]["herald.id"] for p in first.received] == ["n-one"]
        assert [p.message["data"]["herald.id"] for p in second.received] == ["n-two"]


async def test_a_bad_service_account_file_stops_start_up(
    herald_factory: HeraldFactory, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "service_account", "project_id": "x"}))
    for path in (broken, tmp_path / "missing.json"):
        with pytest.raises(Exception, match="FIREBASE_CREDENTIALS"):
            await herald_factory(FIREBASE_CREDENTIALS=str(path), FCM_ENDPOINT="http://127.0.0.1:9")


async def test_the_badge_is_the_persons_unread_count_wherever_they_read(
    mobile_herald: RunningHerald, fcm: FcmStandIn
) -> None:
    """Android's notification count and `herald.unread` for the app: the unread count in the
    person's inbox when the push was sent."""
    user = "emulator:ada"
    await register(mobile_herald, device_body(user))
    for count, nid in enumerate(("b-1", "b-2"), start=1):
        code, _ = await mobile_herald.post_event(event({"users": [user]}, id=nid))
        assert code == 202
        pushes = await fcm.wait_for(count)
        await mobile_herald.wait_status(nid)
    badges = [
        (
            p.message["android"]["notification"]["notification_count"],
            p.message["data"]["herald.unread"],
        )
        for p in pushes
    ]
    assert badges == [(1, "1"), (2, "2")]

    # Read in the app (or anywhere): the next push counts only what is still unread.
    app = {"Authorization": "Bearer " + mobile_herald.herald.links.issue(user, "devices")}
    for nid in ("b-1", "b-2"):
        code, body = await mobile_herald.request(
            "POST", f"/api/notifications/{nid}/read", headers=app, auth=False
        )
        assert code == 200, body
    assert body["unread"] == 0
    code, _ = await mobile_herald.post_event(event({"users": [user]}, id="b-3"))
    (*_, latest) = await fcm.wait_for(3)
    assert latest.message["android"]["notification"]["notification_count"] == 1
