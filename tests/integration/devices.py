"""Helpers for the mobile-push tests: registration bodies, tokens, settings for FCM.

Herald talks to the FCM stand-in (tests/peers/fcm.py) for both the OAuth token (the service
account's token_uri) and the sends (FCM_ENDPOINT): nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

from tests.harness import HeraldClient
from tests.peers.apns import ApnsStandIn
from tests.peers.fcm import FcmStandIn

__all__ = ["apns_env", "apns_token", "device_body", "fcm_env", "fcm_token", "register"]


def fcm_token() -> str:
    """A token shaped like FCM's (`<instance>:APA91b<~140 characters>`)."""
    return f"d{secrets.token_urlsafe(10)}:APA91b{secrets.token_urlsafe(105)}"


def apns_token() -> str:
    return secrets.token_hex(32)


def device_body(
    user_id: str,
    *,
    installation_id: str | None = None,
    platform: str = "android",
    fcm: str | None = "new",
    apns: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A registration as a mobile app sends it (`fcm="new"`: a fresh FCM token)."""
    body: dict[str, Any] = {
        "userId": user_id,
        "installationId": installation_id or str(uuid.uuid4()),
        "platform": platform,
        "appId": "com.contoso.field",
        "appVersion": "4.2.0",
        "appBuild": "4207",
        "distribution": "store",
        "hardware": "arm64",
        "os": "iOS" if platform == "ios" else "Android" if platform == "android" else "Web",
        "osVersion": "17.5",
        "model": "iPhone15,2" if platform == "ios" else "Pixel 8",
        "language": "de-DE",
        "timeZone": "Europe/Berlin",
    }
    if fcm is not None:
        body["fcmToken"] = fcm_token() if fcm == "new" else fcm
    if apns is not None:
        body["apnsToken"] = apns
    body.update(overrides)
    return body


async def register(herald: HeraldClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POST /api/devices with the API key; asserts it was stored."""
    code, answer = await herald.request("POST", "/api/devices", json=body, **kwargs)
    assert code in (200, 201), answer
    assert isinstance(answer, dict)
    return answer


def fcm_env(standin: FcmStandIn, directory: Path) -> dict[str, str]:
    """Settings that switch mobile push on against the stand-in."""
    account = standin.service_account(directory / f"firebase-{uuid.uuid4().hex[:8]}.json")
    return {"FIREBASE_CREDENTIALS": str(account), "FCM_ENDPOINT": standin.url}


def apns_env(
    production: ApnsStandIn, directory: Path, sandbox: ApnsStandIn | None = None
) -> dict[str, str]:
    """Settings that switch APNs on against the stand-ins (`sandbox` shares the production
    stand-in's key and certificate; without it both hosts are the production stand-in)."""
    key = production.write_key(directory / f"AuthKey_{uuid.uuid4().hex[:8]}.p8")
    return {
        "APNS_KEY_FILE": str(key),
        "APNS_KEY_ID": production.key_id,
        "APNS_TEAM_ID": production.team_id,
        "APNS_BUNDLE_ID": production.bundle_id,
        "APNS_ENDPOINT": production.url,
        "APNS_SANDBOX_ENDPOINT": (sandbox or production).url,
        "APNS_CA_FILE": str(production.ca_file),
    }
