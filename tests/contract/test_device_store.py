"""DeviceStore contract: one record per installation, one installation per token."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from errors import NotOwner
from storage.devices import DeviceRegistration, Platform
from tests.contract.conftest import Backend


def fcm_token() -> str:
    return f"d{secrets.token_urlsafe(10)}:APA91b{secrets.token_urlsafe(105)}"


def apns_token() -> str:
    return secrets.token_hex(32)


def registration(
    installation_id: str,
    user_id: str = "ada",
    *,
    platform: Platform = "android",
    fcm: str | None = None,
    apns: str | None = None,
    **metadata: str,
) -> DeviceRegistration:
    return DeviceRegistration(
        installation_id=installation_id,
        user_id=user_id,
        platform=platform,
        fcm_token=fcm,
        apns_token=apns,
        metadata={"appId": "com.contoso.field", "os": "Android", "timeZone": "Europe/Berlin"}
        | metadata,
    )


async def test_register_then_read_back(backend: Backend) -> None:
    token = fcm_token()
    outcome = await backend.devices.upsert(registration("inst-1", fcm=token, model="Pixel 8"))
    assert outcome.created
    assert outcome.previous_user_id is None
    assert outcome.displaced == ()
    device = outcome.device
    assert (device.installation_id, device.user_id, device.platform) == ("inst-1", "ada", "android")
    assert (device.fcm_token, device.apns_token, device.active) == (token, None, True)
    assert device.metadata["model"] == "Pixel 8"
    assert device.token_removed is None
    assert await backend.devices.get("inst-1") == device
    assert await backend.devices.get("nope") is None
    assert await backend.devices.for_user("ada") == [device]
    assert await backend.devices.for_user("grace") == []


async def test_registering_again_updates_and_never_duplicates(backend: Backend) -> None:
    first = await backend.devices.upsert(registration("inst-1", fcm=fcm_token(), appVersion="1"))
    await asyncio.sleep(0.01)
    new_token = fcm_token()
    again = await backend.devices.upsert(registration("inst-1", fcm=new_token, appVersion="2"))
    assert not again.created
    assert again.device.fcm_token == new_token
    assert again.device.metadata["appVersion"] == "2"
    assert again.device.created_at == first.device.created_at
    assert again.device.updated_at > first.device.updated_at
    assert [d.installation_id for d in await backend.devices.for_user("ada")] == ["inst-1"]
    assert await backend.devices.targets_for(["ada"]) == {"ada": ["inst-1"]}


async def test_an_installation_that_changes_hands_leaves_its_old_owner(backend: Backend) -> None:
    token = fcm_token()
    await backend.devices.upsert(registration("phone", "ada", fcm=token))
    outcome = await backend.devices.upsert(registration("phone", "grace", fcm=token))
    assert not outcome.created
    assert outcome.previous_user_id == "ada"
    assert await backend.devices.for_user("ada") == []
    assert [d.user_id for d in await backend.devices.for_user("grace")] == ["grace"]
    assert await backend.devices.targets_for(["ada", "grace"]) == {"grace": ["phone"]}
    # A delivery planned for Ada before the hand-over finds nothing.
    assert await backend.devices.get_many([("ada", "phone")]) == {}
    found = await backend.devices.get_many([("grace", "phone"), ("grace", "other")])
    assert list(found) == [("grace", "phone")]


async def test_a_token_moved_to_another_installation_is_removed_from_the_first(
    backend: Backend,
) -> None:
    token = fcm_token()
    await backend.devices.upsert(registration("old-install", "ada", fcm=token))
    outcome = await backend.devices.upsert(registration("new-install", "grace", fcm=token))
    assert outcome.created
    assert outcome.displaced == ("old-install",)
    old = await backend.devices.get("old-install")
    assert old is not None
    assert (old.fcm_token, old.active) == (None, False)
    assert old.token_removed is not None
    assert old.token_removed.reason == "moved-to-another-installation"
    assert await backend.devices.targets_for(["ada", "grace"]) == {"grace": ["new-install"]}


async def test_an_ios_device_keeps_its_apns_token_when_its_fcm_token_moves(
    backend: Backend,
) -> None:
    token, apns = fcm_token(), apns_token()
    await backend.devices.upsert(registration("iphone", platform="ios", fcm=token, apns=apns))
    await backend.devices.upsert(registration("other", "grace", platform="ios", fcm=token))
    iphone = await backend.devices.get("iphone")
    assert iphone is not None
    assert (iphone.fcm_token, iphone.apns_token, iphone.active) == (None, apns, True)
    assert await backend.devices.targets_for(["ada"]) == {}
    assert await backend.devices.apns_only_for(["ada", "grace"]) == {"ada": ["iphone"]}
    # The APNs token moves too when another installation registers it.
    await backend.devices.upsert(registration("third", "grace", platform="ios", apns=apns))
    iphone = await backend.devices.get("iphone")
    assert iphone is not None
    assert (iphone.apns_token, iphone.active) == (None, False)


async def test_targets_and_apns_only_devices_per_user(backend: Backend) -> None:
    for index in range(3):
        await backend.devices.upsert(registration(f"ada-{index}", "ada", fcm=fcm_token()))
    await backend.devices.upsert(
        registration("grace-ios", "grace", platform="ios", apns=apns_token())
    )
    await backend.devices.upsert(
        registration("grace-both", "grace", platform="ios", fcm=fcm_token(), apns=apns_token())
    )
    targets = await backend.devices.targets_for(["ada", "grace", "nobody"])
    assert targets == {"ada": ["ada-0", "ada-1", "ada-2"], "grace": ["grace-both"]}
    assert await backend.devices.apns_only_for(["ada", "grace"]) == {"grace": ["grace-ios"]}


async def test_many_users_at_once(backend: Backend) -> None:
    users = [f"user-{i:04d}" for i in range(1200)]
    for user in users[::100]:
        await backend.devices.upsert(registration(f"inst-{user}", user, fcm=fcm_token()))
    targets = await backend.devices.targets_for(users)
    assert sorted(targets) == users[::100]
    keys = [(user, f"inst-{user}") for user in users]
    assert len(await backend.devices.get_many(keys)) == len(users[::100])


async def test_remove_fcm_token_only_if_it_is_still_the_one_sent_to(backend: Backend) -> None:
    old, new = fcm_token(), fcm_token()
    await backend.devices.upsert(registration("inst-1", fcm=old))
    await backend.devices.upsert(registration("inst-1", fcm=new))
    # FCM said UNREGISTERED for the old token after the app had registered a new one.
    assert not await backend.devices.remove_fcm_token("inst-1", old, "UNREGISTERED")
    device = await backend.devices.get("inst-1")
    assert device is not None and device.fcm_token == new and device.active

    assert await backend.devices.remove_fcm_token("inst-1", new, "UNREGISTERED")
    device = await backend.devices.get("inst-1")
    assert device is not None
    assert (device.fcm_token, device.active) == (None, False)
    assert device.token_removed is not None
    assert device.token_removed.reason == "UNREGISTERED"
    assert device.metadata["appId"] == "com.contoso.field"  # kept for the audit
    assert await backend.devices.targets_for(["ada"]) == {}
    assert not await backend.devices.remove_fcm_token("inst-1", new, "UNREGISTERED")

    # Registering again brings it back, and the removal note goes.
    again = await backend.devices.upsert(registration("inst-1", fcm=fcm_token()))
    assert again.device.active and again.device.token_removed is None


async def test_delete(backend: Backend) -> None:
    await backend.devices.upsert(registration("inst-1", fcm=fcm_token()))
    assert await backend.devices.delete("inst-1")
    assert not await backend.devices.delete("inst-1")
    assert await backend.devices.get("inst-1") is None
    assert await backend.devices.targets_for(["ada"]) == {}


async def test_concurrent_registrations_of_one_installation_leave_one_record(
    backend: Backend,
) -> None:
    tokens = [fcm_token() for _ in range(20)]
    await asyncio.gather(*(backend.devices.upsert(registration("inst-1", fcm=t)) for t in tokens))
    devices = await backend.devices.for_user("ada")
    assert len(devices) == 1
    assert devices[0].fcm_token in tokens


async def test_metadata_round_trips_unicode(backend: Backend) -> None:
    metadata: dict[str, Any] = {"model": "Ünïcode 📱", "language": "de-DE"}
    outcome = await backend.devices.upsert(registration("inst-1", fcm=fcm_token(), **metadata))
    device = await backend.devices.get("inst-1")
    assert device is not None and device.metadata == outcome.device.metadata
    assert device.metadata["model"] == "Ünïcode 📱"


# --- ownership (issue 11, case 5): a user may write only their own installations and tokens ---


async def test_owner_only_refuses_another_user_s_installation_and_writes_nothing(
    backend: Backend,
) -> None:
    token = fcm_token()
    grace = await backend.devices.upsert(registration("grace-phone", "grace", fcm=token))
    with pytest.raises(NotOwner) as refused:
        await backend.devices.upsert(
            registration("grace-phone", "ada", fcm=fcm_token()), owner_only=True
        )
    assert refused.value.field == "installationId"
    assert await backend.devices.get("grace-phone") == grace.device
    assert await backend.devices.for_user("ada") == []
    # Its owner registers it again as before; a backend may still move it.
    again = await backend.devices.upsert(
        registration("grace-phone", "grace", fcm=token), owner_only=True
    )
    assert not again.created and again.device.user_id == "grace"
    moved = await backend.devices.upsert(registration("grace-phone", "ada", fcm=token))
    assert moved.previous_user_id == "grace"
    assert [d.installation_id for d in await backend.devices.for_user("ada")] == ["grace-phone"]


@pytest.mark.parametrize("kind", ["fcm", "apns"])
async def test_owner_only_refuses_a_token_another_user_s_installation_holds(
    backend: Backend, kind: str
) -> None:
    token = fcm_token() if kind == "fcm" else apns_token()
    tokens = {"fcm": token} if kind == "fcm" else {"apns": token}
    grace = await backend.devices.upsert(
        registration("grace-phone", "grace", platform="ios", **tokens)
    )
    with pytest.raises(NotOwner) as refused:
        await backend.devices.upsert(
            registration("ada-phone", "ada", platform="ios", **tokens), owner_only=True
        )
    assert refused.value.field == ("fcmToken" if kind == "fcm" else "apnsToken")
    assert await backend.devices.get("grace-phone") == grace.device
    assert await backend.devices.get("ada-phone") is None
    # A new installation of Grace's own takes it from her old one, as before.
    mine = await backend.devices.upsert(
        registration("grace-tablet", "grace", platform="ios", **tokens), owner_only=True
    )
    assert mine.displaced == ("grace-phone",)


async def test_owner_only_takes_a_token_whose_old_holder_no_longer_has_it(
    backend: Backend,
) -> None:
    token = fcm_token()
    await backend.devices.upsert(registration("grace-phone", "grace", fcm=token))
    await backend.devices.upsert(registration("grace-phone", "grace", fcm=fcm_token()))
    outcome = await backend.devices.upsert(
        registration("ada-phone", "ada", fcm=token), owner_only=True
    )
    assert outcome.created and outcome.displaced == ()


async def test_concurrent_owner_only_registrations_of_one_new_installation_have_one_owner(
    backend: Backend,
) -> None:
    # The check and the write are one step: two people racing for an installation nobody has
    # registered yet cannot both get it, and the loser writes nothing.
    results = await asyncio.gather(
        *(
            backend.devices.upsert(registration("contested", user, fcm=fcm_token()),
                                   owner_only=True)
            for user in ("ada", "grace", "alan", "edsger") * 3
        ),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, NotOwner) for r in lost), lost
    owners = {r.device.user_id for r in won}
    assert len(owners) == 1
    [owner] = owners
    device = await backend.devices.get("contested")
    assert device is not None and device.user_id == owner
    for user in {"ada", "grace", "alan", "edsger"} - owners:
        assert await backend.devices.for_user(user) == []


async def test_delete_for_a_user_removes_only_their_installation(backend: Backend) -> None:
    await backend.devices.upsert(registration("phone", "grace", fcm=fcm_token()))
    assert not await backend.devices.delete("phone", user_id="ada")
    assert await backend.devices.get("phone") is not None
    assert await backend.devices.delete("phone", user_id="grace")
    assert await backend.devices.get("phone") is None
    # Gone for good: anyone may register that installation id now.
    outcome = await backend.devices.upsert(
        registration("phone", "ada", fcm=fcm_token()), owner_only=True
    )
    assert outcome.created


async def test_apns_targets_and_fcm_only_devices_per_user(backend: Backend) -> None:
    await backend.devices.upsert(registration("ada-android", "ada", fcm=fcm_token()))
    await backend.devices.upsert(registration("ada-ios", "ada", platform="ios", apns=apns_token()))
    await backend.devices.upsert(
        registration("grace-both", "grace", platform="ios", fcm=fcm_token(), apns=apns_token())
    )
    users = ["ada", "grace", "nobody"]
    assert await backend.devices.apns_targets_for(users) == {
        "ada": ["ada-ios"],
        "grace": ["grace-both"],
    }
    assert await backend.devices.fcm_only_for(users) == {"ada": ["ada-android"]}


async def test_remove_apns_token_only_if_it_is_still_the_one_sent_to(backend: Backend) -> None:
    old, new, fcm = apns_token(), apns_token(), fcm_token()
    await backend.devices.upsert(registration("iphone", platform="ios", apns=old))
    await backend.devices.upsert(registration("iphone", platform="ios", apns=new))
    # APNs said Unregistered for the old token after the app had registered a new one.
    assert not await backend.devices.remove_apns_token("iphone", old, "Unregistered")
    device = await backend.devices.get("iphone")
    assert device is not None and device.apns_token == new and device.active

    assert await backend.devices.remove_apns_token("iphone", new, "Unregistered")
    device = await backend.devices.get("iphone")
    assert device is not None
    assert (device.apns_token, device.active) == (None, False)
    assert device.token_removed is not None and device.token_removed.reason == "Unregistered"
    assert await backend.devices.apns_targets_for(["ada"]) == {}

    # A device with both tokens keeps its FCM token (and stays reachable) when APNs drops one.
    await backend.devices.upsert(registration("both", platform="ios", fcm=fcm, apns=new))
    assert await backend.devices.remove_apns_token("both", new, "BadDeviceToken")
    device = await backend.devices.get("both")
    assert device is not None
    assert (device.fcm_token, device.apns_token, device.active) == (fcm, None, True)
    # The token is free again: registering it elsewhere moves nothing.
    moved = await backend.devices.upsert(registration("other", platform="ios", apns=new))
    assert moved.displaced == ()
