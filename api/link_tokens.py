"""Signed, short-lived tokens that bind a browser or device registration to one person.

The bot hands a person a link carrying a token for their own user id; the page (or app) sends
it back with the registration. Only Herald holds the signing key, so a token cannot be forged, it
stops working after HERALD_LINK_MINUTES, and it names one user and one purpose: a token issued
to Ada for browser push cannot register a device, or anything for Grace.

An open page trades its token for a fresh one before it runs out (`renew`). The fresh token
carries the time of the original grant (`grant`), so renewals never reach past the absolute
lifetime (HERALD_LINK_MAX_HOURS after the bot gave the link): a token that leaks (a log, a
shared screen) is good for minutes, and even a page that keeps renewing it ends within hours.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from private_file import read_or_create_private

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
    granted_at: int = 0
    """Epoch seconds of the original grant (the link the bot gave); renewals keep it."""


def load_or_create_secret(configured: str, data_dir: Path) -> bytes:
    """The configured key, or one generated once and kept (mode 600) under the data dir."""
    if configured:
        return configured.encode()
    key, _ = read_or_create_private(data_dir / "link-secret.key", lambda: secrets.token_bytes(32))
    return key


class LinkTokens:
    """Issues and verifies JWTs signed with HS256 (PyJWT) by Herald's own key: `sub` the user,
    `pur` the purpose, `exp` the expiry, `grant` the original grant, `n` a nonce."""

    def __init__(
        self,
        secret: bytes,
        ttl_seconds: float,
        *,
        max_lifetime_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the link secret must be at least 32 bytes")
        if max_lifetime_seconds < ttl_seconds:
            raise ValueError("the absolute lifetime cannot be shorter than one token's")
        self._secret = secret
        self._ttl = ttl_seconds
        self._max_lifetime = max_lifetime_seconds
        self._clock = clock

    def issue(self, user_id: str, purpose: str) -> str:
        """A new grant: valid for the token lifetime, renewable up to the absolute one."""
        return self._token(user_id, purpose, int(self._clock()))

    def renew(self, token: str, purpose: str) -> str:
        """A fresh token for a valid one, same user, purpose and original grant; its expiry is
        never later than the grant plus the absolute lifetime. LinkTokenError if `token` must
        not be honoured (including one whose absolute lifetime is over)."""
        claims = self.verify_claims(token, purpose)
        return self._token(claims.user_id, purpose, claims.granted_at)

    def _token(self, user_id: str, purpose: str, granted_at: int) -> str:
        expires = min(self._clock() + self._ttl, granted_at + self._max_lifetime)
        payload = {
            "sub": user_id,
            "pur": purpose,
            "exp": int(expires),
            "grant": granted_at,
            "n": secrets.token_urlsafe(8),
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    @staticmethod
    def looks_like_link(credential: str) -> bool:
        """Signed with a shared key (HS256) as only Herald's links are: Entra ID's access
        tokens are RS256, so a bearer credential can be routed to the right check unverified."""
        try:
            return jwt.get_unverified_header(credential).get("alg") == "HS256"
        except jwt.InvalidTokenError:
            return False

    def verify(self, token: str, purpose: str) -> str:
        """The user id the token was issued to; LinkTokenError if it must not be honoured."""
        return self.verify_claims(token, purpose).user_id

    def verify_claims(self, token: str, purpose: str) -> LinkClaims:
        """The user id and expiry of a token that may be honoured; LinkTokenError if not."""
        if not token or len(token) > 2048:
            raise LinkTokenError("malformed")
        try:
            # Expiry is checked below against this object's clock, not PyJWT's.
            payload = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.InvalidSignatureError as exc:
            raise LinkTokenError("bad signature") from exc
        except jwt.InvalidTokenError as exc:
            raise LinkTokenError("malformed") from exc
        if payload.get("pur") != purpose:
            raise LinkTokenError("wrong purpose")
        expires = payload.get("exp")
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise LinkTokenError("malformed")
        granted = payload.get("grant")
        if not isinstance(granted, int) or isinstance(granted, bool):
            raise LinkTokenError("malformed")
        now = self._clock()
        # The absolute lifetime is checked here too, so lowering the setting ends older grants.
        if expires <= now or granted + self._max_lifetime <= now:
            raise LinkTokenError("expired")
        user_id = payload.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise LinkTokenError("malformed")
        return LinkClaims(user_id, expires, granted)
