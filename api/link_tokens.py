"""Signed, short-lived tokens that bind a browser or device registration to one person.

The bot hands a person a link carrying a token for their own user id; the page (or app) sends
it back with the registration. Only Herald holds the HMAC key, so a token cannot be forged, it
stops working after HERALD_LINK_MINUTES, and it names one user and one purpose: a token issued
to Ada for browser push cannot register a device, or anything for Grace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LinkClaims", "LinkTokenError", "LinkTokens", "load_or_create_secret"]


class LinkTokenError(Exception):
    """The token is malformed, forged, expired or for another purpose; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says: whose it is and until when it may be used."""

    user_id: str
    expires_at: int
    """Epoch seconds; a live page renews its token before this, a stream ends at it."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_secret(configured: str, data_dir: Path) -> bytes:
    """The configured key, or one generated once and kept (mode 600) under the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / "link-secret.key"
    if path.is_file():
        return path.read_bytes()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    path.write_bytes(key)
    path.chmod(0o600)
    return key


class LinkTokens:
    """Issues and verifies `<payload>.<signature>` tokens (base64url, HMAC-SHA256)."""

    def __init__(
        self, secret: bytes, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, user_id: str, purpose: str) -> str:
        payload = {
            "sub": user_id,
            "pur": purpose,
            "exp": int(self._clock() + self._ttl),
            "n": secrets.token_urlsafe(8),
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, purpose: str) -> str:
        """The user id the token was issued to; LinkTokenError if it must not be honoured."""
        return self.verify_claims(token, purpose).user_id

    def verify_claims(self, token: str, purpose: str) -> LinkClaims:
        """The user id and expiry of a token that may be honoured; LinkTokenError if not."""
        body, dot, signature = token.partition(".")
        if not dot or not body or not signature or len(token) > 2048:
            raise LinkTokenError("malformed")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise LinkTokenError("bad signature")
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise LinkTokenError("malformed") from exc
        if not isinstance(payload, dict):
            raise LinkTokenError("malformed")
        if payload.get("pur") != purpose:
            raise LinkTokenError("wrong purpose")
        expires = payload.get("exp")
        if not isinstance(expires, int) or expires <= self._clock():
            raise LinkTokenError("expired")
        user_id = payload.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise LinkTokenError("malformed")
        return LinkClaims(user_id, expires)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
