"""What FCM and APNs both carry (delivery/mobile_payload.py): one iOS app reads a push the same
whichever way it came, and both give way in the same order when the event is too large."""

from __future__ import annotations

import json
from typing import Any

import pytest

from delivery.apns import build_payload
from delivery.fcm import build_message
from delivery.mobile_payload import Fitted, fit_push
from notifications.event import Notice, read_stored

NOW = 1_894_708_800.0


def notice(**fields: Any) -> Notice:
    # Read as stored (leniently), as the channels get it.
    return read_stored(Notice, {"type": "case.assigned", "title": "Case 4711", **fields})


def fcm_ios_data(event: Notice) -> dict[str, str]:
    message = build_message(event, "case-4711", 3, "ios", now=NOW)
    data: dict[str, str] = json.loads(str(message))["data"]
    return data


def apns_keys(event: Notice) -> dict[str, Any]:
    payload = json.loads(build_payload(event, "case-4711", 3))
    payload.pop("aps")
    return dict(payload)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"text": "Customer: Contoso", "url": "https://crm.example.com/4711"},
        {"severity": "error", "acknowledge": {"text": "I have read it"}},
        {"data": {"n": 1, "obj": {"a": [1]}, "none": None, "herald.id": "spoofed", "s": "x"}},
    ],
)
def test_an_ios_app_gets_the_same_custom_keys_through_fcm_and_apns(fields: dict[str, Any]) -> None:
    event = notice(**fields)
    assert fcm_ios_data(event) == apns_keys(event)


def test_each_service_leaves_out_only_its_own_reserved_keys() -> None:
    event = notice(data={"from": "a", "google.x": "b", "aps": "c", "kept": "d"})
    fcm = fcm_ios_data(event)
    apns = apns_keys(event)
    assert "from" not in fcm and "google.x" not in fcm and fcm["aps"] == "c"
    assert apns["from"] == "a" and apns["google.x"] == "b" and "aps" not in apns
    assert fcm["kept"] == apns["kept"] == "d"


def test_the_envelope_is_measured_and_the_content_fitted_again() -> None:
    event = notice(text="word " * 700, data={"k": "v" * 300})
    rounds: list[Fitted] = []

    def assemble(fitted: Fitted) -> tuple[Fitted, int]:
        rounds.append(fitted)
        size = len(json.dumps([fitted.title, fitted.body, fitted.data]).encode()) + 1000
        return fitted, size

    fitted = fit_push(event, 2000, assemble, reserved=lambda key: False)
    assert len(rounds) >= 2  # the first round did not leave room for the envelope
    assert fitted.body is not None and fitted.body.endswith("…")
    assert fitted.data == {"k": "v" * 300}  # the text gave way first, the data stayed


def test_what_cannot_fit_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="the payload cannot be fitted into 100 bytes"):
        fit_push(notice(), 100, lambda f: (f, 10_000), reserved=lambda key: False, name="payload")
