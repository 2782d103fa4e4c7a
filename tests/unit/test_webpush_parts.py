"""Web Push parts that need no peer: payload fitting under the real encryption, headers,
VAPID keys, endpoint rules."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher

from api.push import valid_endpoint
from delivery.payload import ELLIPSIS, fit_json
from delivery.vapid import VapidKeys
from delivery.webpush import WebPushChannel, _ttl, push_payload, topic_for
from errors import SettingsError
from notifications.event import Notice

LIMIT = WebPushChannel.max_payload_bytes


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_keys() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"p256dh": b64(point), "auth": b64(b"0123456789abcdef")}


def encrypted_size(payload: bytes) -> int:
    """The body pywebpush posts for `payload` (aes128gcm, one record)."""
    pusher = WebPusher({"endpoint": "https://push.example/x", "keys": browser_keys()})
    return len(pusher.encode(payload, "aes128gcm")["body"])


def test_the_limit_is_what_aes128gcm_leaves_of_4096_bytes() -> None:
    assert encrypted_size(b"x" * LIMIT) == 4096
    assert encrypted_size(b"x") == 4096 - LIMIT + 1  # 103 bytes of overhead


@pytest.mark.parametrize(
    "text",
    [
        "plain " * 700,  # ASCII, 4,200 bytes
        "Zürich 🌍 " * 400,  # multi-byte, about 5,200 bytes
        '"\\\n' * 1300,  # every character escaped in JSON: two bytes each
    ],
)
def test_long_text_is_cut_to_fit_the_encrypted_limit(text: str) -> None:
    event = {"type": "t", "title": "Title", "text": text[:4000], "url": "https://x.example/1"}
    payload = push_payload(Notice.model_validate(event), "n-1", LIMIT)
    assert len(payload) <= LIMIT
    assert len(payload) > LIMIT - 12  # as much text as fits, not a lot less
    assert encrypted_size(payload) <= 4096
    document = json.loads(payload)
    assert document["text"].endswith(ELLIPSIS)
    assert text.startswith(document["text"][: -len(ELLIPSIS)].rstrip())
    assert document["url"] == "https://x.example/1"


def test_data_goes_before_the_text_is_cut_short() -> None:
    event = {"type": "t", "title": "Title", "text": "a" * 1000, "data": {"blob": "x" * 5000}}
    document = json.loads(push_payload(Notice.model_validate(event), "n-1", LIMIT))
    assert "data" not in document
    assert document["text"] == "a" * 1000  # the text fits once the data is gone
    event = {"type": "t", "title": "T", "text": "a" * 3500, "data": {"blob": "x" * 300}}
    document = json.loads(push_payload(Notice.model_validate(event), "n-1", LIMIT))
    assert document["data"] == {"blob": "x" * 300}  # cut text, keep small data
    assert len(document["text"]) >= 280


def test_small_payloads_are_untouched_and_never_carry_nulls() -> None:
    event = {"type": "t", "title": "Hi", "severity": "error", "text": None}
    assert json.loads(push_payload(Notice.model_validate(event), "n-1", LIMIT)) == {
        "id": "n-1",
        "title": "Hi",
        "severity": "error",
        "type": "t",
    }


def test_fit_json_takes_every_step_and_refuses_only_the_impossible() -> None:
    document = {"id": "x" * 50, "title": "é" * 200, "url": "https://" + "ü" * 2000}
    fitted = json.loads(fit_json(document, 300, [("url", "drop", 0), ("title", "truncate", 1)]))
    assert "url" not in fitted and fitted["title"].endswith(ELLIPSIS)
    with pytest.raises(ValueError, match="cannot be fitted"):
        fit_json({"id": "x" * 500}, 100, [("title", "truncate", 0)])


def test_topic_is_32_url_safe_characters_per_notification() -> None:
    topic = topic_for("build-77")
    assert len(topic) == 32
    assert set(topic) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert topic == topic_for("build-77") != topic_for("build-78")


def test_ttl_counts_down_to_expires_at() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    def event(**fields: str) -> Notice:
        return Notice.model_validate({"type": "t", "title": "T", **fields})

    assert _ttl(event(expiresAt="2030-01-01T01:00:00Z"), now, 86400) == 3600
    assert _ttl(event(expiresAt="2029-12-31T00:00:00+00:00"), now, 86400) == 0
    assert _ttl(event(), now, 86400) == 86400


def test_vapid_key_formats(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    raw = b64(key.private_numbers().private_value.to_bytes(32, "big"))
    der = b64(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    loaded = {
        VapidKeys.load(text, "mailto:ops@example.com", tmp_path).public_key
        for text in (pem, raw, der)
    }
    assert len(loaded) == 1
    assert not (tmp_path / "vapid-private.pem").exists()  # configured: nothing generated


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a key", "not a P-256 private key"),
        (
            ec.generate_private_key(ec.SECP384R1())
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode(),
            "P-256",
        ),
    ],
)
def test_unusable_vapid_keys_stop_the_start(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        VapidKeys.load(value, "mailto:ops@example.com", tmp_path)
    assert value not in str(err.value)


@pytest.mark.parametrize("subject", ["ops@example.com", "http://example.com", "mailto:nobody"])
def test_the_vapid_subject_must_be_mailto_or_https(tmp_path: Path, subject: str) -> None:
    with pytest.raises(SettingsError, match="WEBPUSH_VAPID_SUBJECT"):
        VapidKeys.load("", subject, tmp_path)


def test_generated_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = VapidKeys.load("", "mailto:herald@localhost", tmp_path)
    path = tmp_path / "vapid-private.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert VapidKeys.load("", "mailto:herald@localhost", tmp_path).public_key == first.public_key
    assert "PRIVATE" not in repr(first)


def test_signed_tokens_are_reused_per_push_service_until_near_expiry(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    key = ec.generate_private_key(ec.SECP256R1())
    vapid = VapidKeys(key, "mailto:ops@example.com", clock=lambda: now[0])
    fcm = vapid.authorization("https://fcm.googleapis.com/fcm/send/abc")
    assert fcm == vapid.authorization("https://fcm.googleapis.com/fcm/send/other")
    mozilla = vapid.authorization("https://updates.push.services.mozilla.com/wpush/v2/x")
    assert mozilla != fcm
    assert fcm.startswith("vapid t=") and f"k={vapid.public_key}" in fcm
    assert Vapid02.verify(fcm)  # a valid ES256 JWT for our public key
    claims = json.loads(base64.urlsafe_b64decode(fcm.split("t=")[1].split(".")[1] + "=="))
    assert claims == {
        "sub": "mailto:ops@example.com",
        "aud": "https://fcm.googleapis.com",
        "exp": int(now[0] + 12 * 3600),
    }
    now[0] += 10 * 3600
    assert vapid.authorization("https://fcm.googleapis.com/x") == fcm
    now[0] += 1.5 * 3600  # less than an hour left: a new token
    assert vapid.authorization("https://fcm.googleapis.com/x") != fcm


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", True),
        ("https://push.example.com:8443/x?y=1", True),
        ("http://127.0.0.1:9000/notify/abc", True),
        ("http://127.8.9.10/notify/abc", True),
        ("http://localhost/x", True),
        ("http://[::1]:80/x", True),
        ("http://10.0.0.1/x", False),
        ("http://push.example.com/x", False),
        ("http://localhost.example.com/x", False),
        ("https://push.example.com/x#frag", False),
        ("https://a@push.example.com/x", False),
        ("https://push.example.com:0x50/x", False),
        ("wss://push.example.com/x", False),
        ("https:///x", False),
    ],
)
def test_endpoint_rules(endpoint: str, ok: bool) -> None:
    if ok:
        assert valid_endpoint(endpoint) == endpoint
    else:
        with pytest.raises(ValueError):
            valid_endpoint(endpoint)
