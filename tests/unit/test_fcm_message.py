"""What the FCM channel puts in a message, and what FCM's errors mean for a delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from firebase_admin import exceptions, messaging

from delivery.fcm import build_message, collapse_id, fcm_refusal, map_fcm_error
from errors import DeliveryFailed, RetryLater, TargetGone
from notifications.event import Notice, read_stored
from outbound.errors import ConnectFailed, InvalidRequest, TimedOut

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def encoded(message: messaging.Message) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(str(message))
    document.pop("token", None)
    return document


def size(message: messaging.Message) -> int:
    return len(json.dumps(encoded(message), ensure_ascii=False, separators=(",", ":")).encode())


def notice(document: dict[str, Any]) -> Notice:
    """The event as the channel gets it: read as a stored one (leniently, so the oversized
    text of the shrinking test loads as an event stored under looser limits would)."""
    return read_stored(Notice, document)


def build(platform: str, **event: Any) -> dict[str, Any]:
    base = {"type": "case.assigned", "title": "Case 4711", "severity": "warning"}
    message = build_message(notice(base | event), "case-4711", 3, platform, now=NOW.timestamp())
    return encoded(message)


@pytest.mark.parametrize(
    ("urgency", "android", "level", "apns"),
    [
        (None, "normal", None, "10"),
        ("very-low", "normal", "PRIORITY_MIN", "5"),
        ("low", "normal", "PRIORITY_LOW", "5"),
        ("normal", "normal", "PRIORITY_DEFAULT", "10"),
        ("high", "high", "PRIORITY_HIGH", "10"),
    ],
)
def test_urgency_sets_android_priority_and_apns_headers(
    urgency: str | None, android: str, level: str | None, apns: str
) -> None:
    extra = {"urgency": urgency} if urgency else {}
    message = build("android", **extra)["android"]
    assert message["priority"] == android
    assert message["notification"].get("notification_priority") == level
    assert build("ios", **extra)["apns"]["headers"]["apns-priority"] == apns
    web = build("web", **extra)["webpush"]["headers"]
    assert web.get("Urgency") == urgency


def test_each_platform_gets_its_own_options_and_the_collapse_key() -> None:
    android = build("android")
    assert set(android) == {"notification", "data", "android"}
    assert android["android"]["collapse_key"] == "case-4711"
    assert android["android"]["notification"]["tag"] == "case-4711"
    ios = build("ios", icon="https://x.example/i.png")
    assert set(ios) == {"notification", "data", "apns"}
    headers = ios["apns"]["headers"]
    assert headers["apns-collapse-id"] == "case-4711"
    assert headers["apns-push-type"] == "alert"
    assert ios["apns"]["payload"]["aps"]["thread-id"] == "case.assigned"
    assert ios["apns"]["payload"]["aps"]["mutable-content"] == 1
    assert ios["apns"]["fcm_options"]["image"] == "https://x.example/i.png"
    web = build("web", url="https://crm.example.com/4711")
    assert set(web) == {"notification", "data", "webpush"}
    assert web["webpush"]["fcm_options"]["link"] == "https://crm.example.com/4711"
    assert len(web["webpush"]["headers"]["Topic"]) == 32


def test_notification_and_data() -> None:
    message = build(
        "android",
        text="Customer: Contoso",
        icon="https://x.example/i.png",
        url="https://crm.example.com/4711",
        data={
            "n": 1,
            "ok": False,
            "obj": {"a": [1]},
            "none": None,
            "s": "x",
            "from": "y",
            "google.c.a": "z",
            "GCM.x": "w",
            "herald.id": "spoofed",
        },
    )
    assert message["notification"] == {
        "title": "Case 4711",
        "body": "Customer: Contoso",
        "image": "https://x.example/i.png",
    }
    assert message["data"] == {
        "n": "1",
        "ok": "false",
        "obj": '{"a":[1]}',
        "s": "x",
        "herald.id": "case-4711",
        "herald.version": "3",
        "herald.type": "case.assigned",
        "herald.severity": "warning",
        "herald.url": "https://crm.example.com/4711",
    }


def test_expiry_becomes_ttl_and_apns_expiration() -> None:
    expires = NOW + timedelta(hours=2)
    event = {"expiresAt": expires.isoformat()}
    assert build("android", **event)["android"]["ttl"] == "7200s"
    assert build("ios", **event)["apns"]["headers"]["apns-expiration"] == str(
        int(expires.timestamp())
    )
    assert build("web", **event)["webpush"]["headers"]["TTL"] == "7200"
    assert "ttl" not in build("android")["android"]


@pytest.mark.parametrize("platform", ["android", "ios", "web"])
def test_large_content_is_shrunk_to_4096_bytes_text_first(platform: str) -> None:
    event = {
        "type": "case.assigned",
        "title": "Titel mit Ümläuten " * 10,
        "text": "Ein langer Text über den Fall. " * 130,
        "icon": "https://x.example/" + "i" * 500,
        "url": "https://crm.example.com/" + "u" * 500,
        "data": {f"k{i}": "v" * 50 for i in range(60)},
    }
    message = build_message(notice(event), "n" * 200, 1, platform, now=NOW.timestamp())
    assert 3900 < size(message) <= 4096
    document = encoded(message)
    body = document["notification"]["body"]
    # The text was cut to a readable start, the event's data went before the text went whole.
    assert body.startswith("Ein langer Text") and body.endswith("…")
    assert "k0" not in document["data"]
    assert document["data"]["herald.id"] == "n" * 200


def test_small_content_is_left_alone() -> None:
    message = build_message(
        notice({"type": "t", "title": "Hi", "text": "x" * 1000, "data": {"a": "b"}}),
        "id",
        1,
        "android",
    )
    document = encoded(message)
    assert document["notification"]["body"] == "x" * 1000
    assert document["data"]["a"] == "b"


def test_collapse_ids_fit_apns_64_bytes() -> None:
    assert collapse_id("case-4711") == "case-4711"
    long = collapse_id("x" * 65)
    assert len(long.encode()) == 64 and long == collapse_id("x" * 65) != collapse_id("x" * 66)


def _answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://x"))


@pytest.mark.parametrize(
    ("error", "kind", "reason", "after"),
    [
        (
            messaging.UnregisteredError("gone", http_response=_answer(404)),
            TargetGone,
            "UNREGISTERED",
            None,
        ),
        (
            messaging.SenderIdMismatchError("no", http_response=_answer(403)),
            TargetGone,
            "SENDER_ID_MISMATCH",
            None,
        ),
        (
            exceptions.InvalidArgumentError("bad token", http_response=_answer(400)),
            DeliveryFailed,
            "INVALID_ARGUMENT: bad token",
            None,
        ),
        (
            messaging.ThirdPartyAuthError("apns cert", http_response=_answer(401)),
            DeliveryFailed,
            "THIRD_PARTY_AUTH_ERROR: apns cert",
            None,
        ),
        (
            messaging.QuotaExceededError("slow down", http_response=_answer(429, "30")),
            RetryLater,
            "QUOTA_EXCEEDED",
            30.0,
        ),
        (
            exceptions.UnavailableError("down", http_response=_answer(503, "5")),
            RetryLater,
            "UNAVAILABLE",
            5.0,
        ),
        (exceptions.UnavailableError("refused"), RetryLater, "UNAVAILABLE", None),
        (
            exceptions.InternalError("oops", http_response=_answer(500)),
            RetryLater,
            "INTERNAL",
            None,
        ),
        (exceptions.DeadlineExceededError("slow"), RetryLater, "DEADLINE_EXCEEDED", None),
        (exceptions.UnauthenticatedError("token"), RetryLater, "UNAUTHENTICATED", None),
        (
            ValueError("Message.data must not contain non-string values."),
            DeliveryFailed,
            "invalid-message: Message.data must not contain non-string values.",
            None,
        ),
    ],
)
def test_fcm_errors_map_to_what_the_outbox_does(
    error: BaseException, kind: type, reason: str, after: float | None
) -> None:
    mapped = map_fcm_error(error)
    assert type(mapped) is kind
    assert mapped.reason == reason
    assert getattr(mapped, "after", None) == after


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    error = messaging.QuotaExceededError(
        "later", http_response=_answer(429, when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    )
    mapped = map_fcm_error(error)
    assert isinstance(mapped, RetryLater)
    assert mapped.after is not None and 100 < mapped.after <= 120


def _fcm_body(status: str, message: str, error_code: str | None = None) -> bytes:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
        if error_code
        else []
    )
    return json.dumps(
        {"error": {"message": message, "status": status, "details": details}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "reason", "after"),
    [
        (404, {}, _fcm_body("NOT_FOUND", "gone", "UNREGISTERED"), TargetGone, "UNREGISTERED", None),
        (
            403,
            {},
            _fcm_body("PERMISSION_DENIED", "no", "SENDER_ID_MISMATCH"),
            TargetGone,
            "SENDER_ID_MISMATCH",
            None,
        ),
        (
            400,
            {},
            _fcm_body("INVALID_ARGUMENT", "bad token", "INVALID_ARGUMENT"),
            DeliveryFailed,
            "INVALID_ARGUMENT: bad token",
            None,
        ),
        (
            400,
            {},
            _fcm_body("INVALID_ARGUMENT", "who knows", "UNSPECIFIED_ERROR"),
            DeliveryFailed,
            "INVALID_ARGUMENT: who knows",
            None,
        ),
        (
            401,
            {},
            _fcm_body("UNAUTHENTICATED", "apns cert", "THIRD_PARTY_AUTH_ERROR"),
            DeliveryFailed,
            "THIRD_PARTY_AUTH_ERROR: apns cert",
            None,
        ),
        (
            429,
            {"retry-after": "30"},
            _fcm_body("RESOURCE_EXHAUSTED", "slow down", "QUOTA_EXCEEDED"),
            RetryLater,
            "QUOTA_EXCEEDED",
            30.0,
        ),
        (
            503,
            {"retry-after": "5"},
            _fcm_body("UNAVAILABLE", "down"),
            RetryLater,
            "UNAVAILABLE",
            5.0,
        ),
        (500, {}, _fcm_body("INTERNAL", "oops", "INTERNAL"), RetryLater, "INTERNAL", None),
        (401, {}, _fcm_body("UNAUTHENTICATED", "token"), RetryLater, "UNAUTHENTICATED", None),
        (502, {}, b"<html>Bad Gateway</html>", RetryLater, "INTERNAL", None),
        (400, {}, b"", DeliveryFailed, "INVALID_ARGUMENT: FCM answered HTTP 400", None),
    ],
)
def test_fcm_error_answers_map_to_what_the_outbox_does(
    status: int, headers: dict[str, str], body: bytes, kind: type, reason: str, after: float | None
) -> None:
    mapped = map_fcm_error(fcm_refusal(status, headers, body))
    assert type(mapped) is kind
    assert mapped.reason == reason
    assert getattr(mapped, "after", None) == after


def test_transport_errors_map_to_fcm_words() -> None:
    timed_out = map_fcm_error(TimedOut("timed out (TimeoutError)"))
    assert type(timed_out) is RetryLater and timed_out.reason == "DEADLINE_EXCEEDED"
    refused = map_fcm_error(ConnectFailed("connect failed (ConnectionRefusedError)"))
    assert type(refused) is RetryLater and refused.reason == "UNAVAILABLE"
    invalid = map_fcm_error(InvalidRequest("header 'x' contains a line break"))
    assert type(invalid) is DeliveryFailed
    assert invalid.reason == "invalid-request: header 'x' contains a line break"
