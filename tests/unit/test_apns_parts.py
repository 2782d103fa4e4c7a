"""APNs parts without a network: the payload's 4 KB fit, the settings, the sandbox choice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config import Settings
from delivery.apns import MAX_PAYLOAD, build_payload, uses_sandbox
from errors import SettingsError
from notifications.event import Notice, read_stored
from storage.devices import DeviceRecord


def event(**fields: object) -> Notice:
    # Read as stored (leniently): one test needs a title longer than a post may have.
    return read_stored(
        Notice, {"type": "case.assigned", "title": "Case 4711", "text": "Assigned.", **fields}
    )


def test_a_short_notification_is_sent_whole() -> None:
    payload = json.loads(
        build_payload(event(url="https://crm.example.com/4711"), "n-1", 3, badge=2)
    )
    assert payload == {
        "aps": {
            "alert": {"title": "Case 4711", "body": "Assigned."},
            "thread-id": "n-1",
            "interruption-level": "active",
            "badge": 2,
        },
        "herald.id": "n-1",
        "herald.version": "3",
        "herald.type": "case.assigned",
        "herald.severity": "info",
        "herald.url": "https://crm.example.com/4711",
    }


def test_an_acknowledgement_request_comes_as_the_acknowledge_category() -> None:
    """The app's action for the category reports to POST /api/notifications/{id}/acknowledge
    (issue 14), like the FCM message's `apns` block."""
    payload = json.loads(
        build_payload(event(acknowledge={"text": "I have read it"}), "n-1", 1, badge=4)
    )
    assert payload["aps"]["category"] == "HERALD_ACKNOWLEDGE"
    assert payload["aps"]["badge"] == 4
    assert payload["herald.acknowledge"] == "I have read it"
    assert "category" not in json.loads(build_payload(event(), "n-2", 1))["aps"]


@pytest.mark.parametrize("text_length", [3_000, 3_999])
def test_the_text_is_cut_first_and_nothing_is_refused(text_length: int) -> None:
    text = "ä" * text_length  # two bytes each: far over 4 KB
    data = {f"k{i}": "v" * 50 for i in range(10)}
    payload = build_payload(
        event(text=text, icon="https://x.example/i.png", data=data), "n-1", 1, badge=99
    )
    assert len(payload) <= MAX_PAYLOAD
    document = json.loads(payload)
    assert document["aps"]["alert"]["body"].endswith("…")
    assert len(document["aps"]["alert"]["body"]) >= 280
    assert document["k9"] == "v" * 50  # the data stayed: the text gave way first
    assert document["aps"]["mutable-content"] == 1


def test_when_the_data_alone_is_too_big_it_goes_and_the_push_still_goes() -> None:
    data = {f"k{i}": "v" * 500 for i in range(20)}
    payload = build_payload(event(title="T" * 300, data=data), "n-1", 1)
    assert len(payload) <= MAX_PAYLOAD
    document = json.loads(payload)
    assert "k0" not in document
    assert document["aps"]["alert"]["title"] == "T" * 300


def test_debug_builds_use_the_sandbox() -> None:
    def device(distribution: str) -> DeviceRecord:
        now = time.time()
        return DeviceRecord(
            "i", "u", "ios", None, "ab" * 32, {"distribution": distribution}, True, now, now
        )

    assert uses_sandbox(device("debug")) and uses_sandbox(device(" Development "))
    assert not any(uses_sandbox(device(d)) for d in ("store", "testflight", "enterprise", ""))


def test_apns_settings_come_together_and_hosts_are_https(tmp_path: Path) -> None:
    key = tmp_path / "AuthKey.p8"
    full = {
        "APNS_KEY_FILE": str(key),
        "APNS_KEY_ID": "KEYID56789",
        "APNS_TEAM_ID": "TEAMID1234",
        "APNS_BUNDLE_ID": "com.contoso.field",
    }
    settings = Settings.from_env(full, env_file=None)
    assert settings.apns_configured and settings.mobile_prefer == "fcm"
    assert not Settings.from_env({}, env_file=None).apns_configured
    with pytest.raises(SettingsError, match="APNS_BUNDLE_ID, APNS_KEY_FILE"):
        Settings.from_env({"APNS_KEY_ID": "K", "APNS_TEAM_ID": "T"}, env_file=None)
    with pytest.raises(SettingsError, match="APNS_ENDPOINT must be an https URL"):
        Settings.from_env({**full, "APNS_ENDPOINT": "http://127.0.0.1:1"}, env_file=None)
    with pytest.raises(SettingsError, match="HERALD_MOBILE_PREFER"):
        Settings.from_env({"HERALD_MOBILE_PREFER": "both"}, env_file=None)
