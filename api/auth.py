"""API-key authentication for every endpoint except the bot's, health checks and the spec.

Keys are held only as SHA-256 hashes; a key generated on first start is written hashed to the
data directory and shown once, so nothing on disk can be replayed as a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

from api.http import error_response

__all__ = ["ApiKeyAuth", "ensure_generated_key", "hash_key"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = frozenset(
    {
        "/api/messages",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/metrics",
        # Microsoft Graph cannot send an API key: its notifications are checked by clientState.
        "/api/graph/notifications",
        "/api/graph/lifecycle",
    }
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_generated_key(data_dir: Path) -> tuple[list[str], str | None]:
    """Hashes of the generated key(s); creates one on first start and returns it (once)."""
    path = data_dir / "api-keys.sha256"
    if path.is_file():
        hashes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if hashes:
            return hashes, None
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "hk_" + secrets.token_urlsafe(32)
    path.write_text(hash_key(key) + "\n")
    path.chmod(0o600)
    return [hash_key(key)], key


class ApiKeyAuth:
    """`Authorization: Bearer <key>` against a set of key hashes."""

    def __init__(
        self, key_hashes: Iterable[str], *, self_authenticated: Iterable[str] = ()
    ) -> None:
        self._hashes = tuple(key_hashes)
        # Paths whose handlers check credentials themselves (e.g. a link token from the bot).
        self._self_authenticated = frozenset(self_authenticated)
        # An entry ending in "/" covers everything under it (/api/devices/{installationId}).
        self._self_authenticated_prefixes = tuple(
            path for path in self._self_authenticated if path.endswith("/")
        )

    def check(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        digest = hash_key(key.strip())
        # Compare against every hash so timing does not reveal which one matched.
        matched = False
        for known in self._hashes:
            matched |= hmac.compare_digest(digest, known)
        return matched

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path in PUBLIC_PATHS
            or request.path in self._self_authenticated
            or request.path.startswith(self._self_authenticated_prefixes)
            or not request.path.startswith("/api/")
        ):
            return await handler(request)
        if not self.check(request.headers.get("Authorization")):
            return error_response(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": 'Bearer realm="herald"'},
            )
        return await handler(request)
