"""VAPID (RFC 8292): the key pair that identifies Herald to browsers' push services.

The browser subscribes with Herald's public key; every push then carries a JWT signed with
the private key (`Authorization: vapid t=<jwt>,k=<public key>`), so a push service accepts
pushes to that subscription from Herald only. The key comes from WEBPUSH_VAPID_PRIVATE_KEY
(PEM, or base64url of the raw 32-byte scalar or of DER) or is generated on first start and
kept under the data directory: changing it orphans every subscription, so it must survive
restarts.

A signed token is valid for one push service origin (`aud`) until `exp` (at most 24 h, RFC 8292
§2); one token per origin is reused until shortly before it expires, which saves an ECDSA
signature per push.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

from errors import SettingsError
from private_file import read_or_create_private

__all__ = ["VapidKeys", "audience"]

_KEY_FILE = "vapid-private.pem"
_SETTING = "WEBPUSH_VAPID_PRIVATE_KEY"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    compact = "".join(text.split())
    return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))


def audience(endpoint: str) -> str:
    """The `aud` claim for a push endpoint: its origin (scheme://host[:port])."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _parse_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, or base64url of the raw scalar or of DER."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.strip().encode(), password=None)
        else:
            raw = _unb64url(text)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(
            f"{_SETTING} is not a P-256 private key (PEM, or base64url raw/DER)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SettingsError(f"{_SETTING} must be an EC key on the P-256 curve (prime256v1)")
    return key


def _new_private_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class VapidKeys:
    """Herald's VAPID key pair, its public key as browsers want it, and signed headers."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        subject: str,
        *,
        token_seconds: float = 12 * 3600,
        renew_before_seconds: float = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (subject.startswith("mailto:") or subject.startswith("https:")):
            raise SettingsError("WEBPUSH_VAPID_SUBJECT must be a mailto: or https: URL")
        self._vapid = Vapid02(private_key)
        self._subject = subject
        self._token_seconds = token_seconds
        self._renew_before = renew_before_seconds
        self._clock = clock
        self._tokens: dict[str, tuple[float, str]] = {}
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = _b64url(point)
        """The uncompressed public point, base64url: `applicationServerKey` for subscribe()."""
        try:  # py_vapid's own checks of the subject, once, at start-up rather than per push
            self._sign("https://push.example")
        except VapidException as exc:
            raise SettingsError(f"WEBPUSH_VAPID_SUBJECT is not usable: {exc}") from exc

    @classmethod
    def load(cls, configured: str, subject: str, data_dir: Path) -> VapidKeys:
        """The configured key, or the one generated on first start under `data_dir`."""
        if configured.strip():
            return cls(_parse_private_key(configured), subject)
        pem, _ = read_or_create_private(data_dir / _KEY_FILE, _new_private_key)
        return cls(_parse_private_key(pem.decode()), subject)

    def _sign(self, aud: str) -> tuple[float, str]:
        expires = int(self._clock() + self._token_seconds)
        # A fresh claims dict each time: py_vapid and pywebpush mutate what they are given.
        header = self._vapid.sign({"sub": self._subject, "aud": aud, "exp": expires})
        return float(expires), str(header["Authorization"])

    def authorization(self, endpoint: str) -> str:
        """The `Authorization` header for a push to `endpoint` (cached per push service)."""
        aud = audience(endpoint)
        cached = self._tokens.get(aud)
        if cached is None or cached[0] - self._clock() < self._renew_before:
            cached = self._sign(aud)
            self._tokens[aud] = cached
        return cached[1]

    def __repr__(self) -> str:
        return f"VapidKeys(public_key={self.public_key[:16]}…, subject={self._subject!r})"
