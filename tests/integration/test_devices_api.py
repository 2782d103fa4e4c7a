"""POST/GET/DELETE /api/devices over real sockets: idempotent registration, validation,
link tokens, and what a registration does to the user (created, time zone adopted)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.devices import DEVICES_PURPOSE
from tests.harness import RunningHerald
from tests.integration.devices import apns_token, device_body, fcm_token, register

ADA = "emulator:ada-0001"
GRACE = "emulator:grace-0002"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def devices_of(herald: RunningHerald, user_id: str) -> list[dict[str, Any]]:
    code, body = await herald.request("GET", f"/api/devices?userId={user_id}")
    assert code == 200, body
    assert body["userId"] == user_id
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_registration_is_an_idempotent_upsert_by_installation(
    herald: RunningHerald,
) -> None:
    body = device_body(ADA, installation_id="inst-1")
    code, first = await herald.request("POST", "/api/devices", json=body)
    assert code == 201, first
    assert first["installationId"] == "inst-1"
    assert first["userId"] == ADA
    assert first["fcmToken"] == body["fcmToken"]
    assert first["active"] is True and first["tokenRemoved"] is None
    for name in (
        "appId",
        "appVersion",
        "appBuild",
        "distribution",
        "hardware",
        "os",
        "osVersion",
        "model",
        "language",
        "timeZone",
    ):
        assert first[name] == body[name]

    # The same installation again, with a new token and a new app version: updated in place.
    again = {**body, "fcmToken": fcm_token(), "appVersion": "4.3.0"}
    code, second = await herald.request("POST", "/api/devices", json=again)
    assert code == 200, second
    assert second["fcmToken"] == again["fcmToken"]
    assert second["appVersion"] == "4.3.0"
    assert second["createdAt"] == first["createdAt"]
    listed = await devices_of(herald, ADA)
    assert [d["installationId"] for d in listed] == ["inst-1"]

    code, read = await herald.request("GET", "/api/devices/inst-1")
    assert code == 200
    assert read == listed[0] == second


async def test_an_installation_signed_in_by_another_user_moves_to_them(
    herald: RunningHerald,
) -> None:
    body = device_body(ADA, installation_id="shared-tablet")
    await register(herald, body)
    moved = await register(herald, {**body, "userId": GRACE})
    assert moved["userId"] == GRACE
    assert await devices_of(herald, ADA) == []
    assert [d["installationId"] for d in await devices_of(herald, GRACE)] == ["shared-tablet"]


async def test_a_token_registered_by_another_installation_leaves_the_first(
    herald: RunningHerald,
) -> None:
    token = fcm_token()
    await register(herald, device_body(ADA, installation_id="old", fcm=token))
    await register(herald, device_body(GRACE, installation_id="new", fcm=token))
    (old,) = await devices_of(herald, ADA)
    assert old["fcmToken"] is None
    assert old["active"] is False
    assert old["tokenRemoved"]["reason"] == "moved-to-another-installation"
    (new,) = await devices_of(herald, GRACE)
    assert new["fcmToken"] == token and new["active"] is True


def _without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown platform", device_body(ADA, platform="windows"), "platform"),
    ("FCM token too short", device_body(ADA, fcm="abc"), "fcmToken"),
    ("FCM token with a space", device_body(ADA, fcm="a" * 80 + " " + "b" * 80), "fcmToken"),
    ("FCM token is an APNs token", device_body(ADA, fcm=apns_token()), "fcmToken"),
    ("FCM token not a string", device_body(ADA, fcm=None, fcmToken=12345), "fcmToken"),
    ("APNs token not hex", device_body(ADA, platform="ios", fcm=None, apns="z" * 64), "apnsToken"),
    (
        "APNs token too short",
        device_body(ADA, platform="ios", fcm=None, apns="ab" * 16),
        "apnsToken",
    ),
    ("APNs token on Android", device_body(ADA, apns=apns_token()), "apnsToken"),
    ("no token at all", device_body(ADA, fcm=None), "fcmToken"),
    ("iOS without a token", device_body(ADA, platform="ios", fcm=None), "fcmToken"),
    ("user id is an email", device_body("ada@contoso.com"), "userId"),
    ("user id with no channel", device_body("ada"), "userId"),
    ("user id with a space", device_body("emulator: ada"), "userId"),
    ("installation id with a slash", device_body(ADA, installation_id="a/b"), "installationId"),
    ("missing appId", _without(device_body(ADA), "appId"), "appId"),
    ("appId empty", device_body(ADA, appId=""), "appId"),
    ("model with a line break", device_body(ADA, model="Pixel\n8"), "model"),
    ("unknown field", device_body(ADA, pushKit="x"), "pushKit"),
]


@pytest.mark.parametrize(("why", "body", "field"), BAD, ids=[why for why, _, _ in BAD])
async def test_invalid_registrations_get_400_naming_the_field_and_store_nothing(
    herald: RunningHerald, why: str, body: dict[str, Any], field: str
) -> None:
    code, answer = await herald.request("POST", "/api/devices", json=body)
    assert code == 400, answer
    assert answer["error"]["field"] == field, answer
    user = str(body.get("userId"))
    code, _ = await herald.request("GET", f"/api/users/{user}/preferences")
    assert code in (400, 404)  # no user was created either
    code, _ = await herald.request("GET", f"/api/devices/{body['installationId']}")
    assert code in (400, 404)


async def test_entra_object_ids_are_stable_ids_and_kept_in_lower_case(
    herald: RunningHerald,
) -> None:
    object_id = str(uuid.uuid4())
    answer = await register(herald, device_body(object_id.upper()))
    assert answer["userId"] == object_id
    assert len(await devices_of(herald, object_id)) == 1


async def test_ios_with_only_an_apns_token_is_kept(herald: RunningHerald) -> None:
    token = apns_token().upper()
    answer = await register(herald, device_body(ADA, platform="ios", fcm=None, apns=token))
    assert answer["apnsToken"] == token.lower()
    assert answer["fcmToken"] is None
    assert answer["active"] is True


async def test_registration_creates_the_user_and_adopts_the_time_zone(
    herald: RunningHerald,
) -> None:
    code, _ = await herald.request("GET", f"/api/users/{ADA}/preferences")
    assert code == 404
    await register(herald, device_body(ADA, timeZone="America/Chicago"))
    code, prefs = await herald.request("GET", f"/api/users/{ADA}/preferences")
    assert code == 200
    assert prefs["timeZone"] == "America/Chicago"
    # A zone the user has is never overwritten by a device's.
    await register(herald, device_body(ADA, timeZone="Asia/Tokyo"))
    code, prefs = await herald.request("GET", f"/api/users/{ADA}/preferences")
    assert prefs["timeZone"] == "America/Chicago"


async def test_a_time_zone_herald_does_not_know_is_kept_but_not_adopted(
    herald: RunningHerald,
) -> None:
    answer = await register(herald, device_body(GRACE, timeZone="W. Europe Standard Time"))
    assert answer["timeZone"] == "W. Europe Standard Time"
    code, prefs = await herald.request("GET", f"/api/users/{GRACE}/preferences")
    assert code == 200
    assert prefs["timeZone"] is None


async def test_delete(herald: RunningHerald) -> None:
    await register(herald, device_body(ADA, installation_id="inst-9"))
    code, _ = await herald.request("DELETE", "/api/devices/inst-9")
    assert code == 204
    code, body = await herald.request("DELETE", "/api/devices/inst-9")
    assert code == 404 and body["error"]["field"] == "installationId"
    assert await devices_of(herald, ADA) == []


async def test_listing_needs_one_valid_user_id(herald: RunningHerald) -> None:
    for query in ("", "?userId=ada@contoso.com", f"?userId={ADA}&userId={GRACE}"):
        code, body = await herald.request("GET", f"/api/devices{query}")
        assert code == 400, (query, body)
        assert body["error"]["field"] == "userId"


async def test_a_link_token_reaches_its_own_user_s_devices_only(herald: RunningHerald) -> None:
    links = herald.herald.links
    ada = bearer(links.issue(ADA, DEVICES_PURPOSE))
    # The app registers with the token the bot gave Ada.
    mine = device_body(ADA, installation_id="ada-phone")
    code, answer = await herald.request("POST", "/api/devices", json=mine, headers=ada)
    assert code == 201, answer
    # ... but not for Grace.
    code, answer = await herald.request(
        "POST", "/api/devices", json=device_body(GRACE), headers=ada
    )
    assert code == 403 and answer["error"]["field"] == "userId"
    assert await devices_of(herald, GRACE) == []

    await register(herald, device_body(GRACE, installation_id="grace-phone"))
    code, listed = await herald.request("GET", "/api/devices", headers=ada)
    assert code == 200
    assert [d["installationId"] for d in listed["items"]] == ["ada-phone"]
    code, _ = await herald.request("GET", f"/api/devices?userId={GRACE}", headers=ada)
    assert code == 403
    code, _ = await herald.request("GET", "/api/devices/grace-phone", headers=ada)
    assert code == 403
    code, _ = await herald.request("DELETE", "/api/devices/grace-phone", headers=ada)
    assert code == 403
    assert len(await devices_of(herald, GRACE)) == 1
    code, _ = await herald.request("GET", "/api/devices/ada-phone", headers=ada)
    assert code == 200
    code, _ = await herald.request("DELETE", "/api/devices/ada-phone", headers=ada)
    assert code == 204


@pytest.mark.parametrize(
    "make",
    [
        lambda h: {},
        lambda h: bearer("not-a-key-nor-a-token"),
        lambda h: bearer(h.herald.links.issue(ADA, "webpush")),  # another purpose
        lambda h: bearer(h.herald.links.issue(ADA, DEVICES_PURPOSE)[:-3] + "AAA"),  # forged
        lambda h: {"Authorization": "Basic " + h.herald.links.issue(ADA, DEVICES_PURPOSE)},
    ],
    ids=["none", "garbage", "wrong-purpose", "forged", "basic"],
)
async def test_requests_without_valid_credentials_get_401(herald: RunningHerald, make: Any) -> None:
    headers = make(herald)
    for method, path, body in (
        ("POST", "/api/devices", device_body(ADA)),
        ("GET", f"/api/devices?userId={ADA}", None),
        ("GET", "/api/devices/inst-1", None),
        ("DELETE", "/api/devices/inst-1", None),
    ):
        code, answer = await herald.request(method, path, json=body, headers=headers, auth=False)
        assert code == 401, (method, path, answer)
        assert answer["error"]["code"] == "unauthorized"
    assert await devices_of(herald, ADA) == []


async def test_an_expired_link_token_gets_401(herald: RunningHerald) -> None:
    links = herald.herald.links
    token = links.issue(ADA, DEVICES_PURPOSE)
    links._clock = lambda: 4_000_000_000.0  # far in the future: the token has expired
    code, answer = await herald.request(
        "POST", "/api/devices", json=device_body(ADA), headers=bearer(token), auth=False
    )
    assert code == 401
    assert "expired" in answer["error"]["message"]


async def test_a_link_token_cannot_take_another_user_s_installation_or_token(
    herald: RunningHerald,
) -> None:
    # Issue 11 (5): with her own devices link, Ada posted Grace's installationId (or Grace's
    # FCM token) and got 200/201: Grace's phone became Ada's. Now 403, and nothing is written.
    ada = bearer(herald.herald.links.issue(ADA, DEVICES_PURPOSE))
    grace_token = fcm_token()
    graces = await register(
        herald, device_body(GRACE, installation_id="grace-phone", fcm=grace_token)
    )

    code, answer = await herald.request(
        "POST", "/api/devices", json=device_body(ADA, installation_id="grace-phone"),
        headers=ada, auth=False,
    )
    assert code == 403, answer
    assert answer["error"]["code"] == "forbidden"
    assert answer["error"]["field"] == "installationId"

    code, answer = await herald.request(
        "POST", "/api/devices",
        json=device_body(ADA, installation_id="ada-phone", fcm=grace_token),
        headers=ada, auth=False,
    )
    assert code == 403, answer
    assert answer["error"]["field"] == "fcmToken"

    assert await devices_of(herald, GRACE) == [graces]  # untouched, token and all
    assert await devices_of(herald, ADA) == []
    code, body = await herald.request("GET", f"/api/users/{ADA}/preferences")
    assert code == 404, body  # not even Ada's user record was created by the refusal

    # Her own installations are hers to register and to move a token between.
    mine = device_body(ADA, installation_id="ada-phone")
    code, answer = await herald.request("POST", "/api/devices", json=mine, headers=ada, auth=False)
    assert code == 201, answer
    code, answer = await herald.request(
        "POST", "/api/devices",
        json=device_body(ADA, installation_id="ada-tablet", fcm=mine["fcmToken"]),
        headers=ada, auth=False,
    )
    assert code == 201, answer

    # A backend (API key) may still move Grace's phone to Ada.
    moved = await register(herald, device_body(ADA, installation_id="grace-phone", fcm=grace_token))
    assert moved["userId"] == ADA
    assert await devices_of(herald, GRACE) == []
