"""Authentication for every endpoint except the bot's, health checks and the spec.

A backend proves itself with an API key or, when configured, an Entra ID access token
(api/entra.py), both as `Authorization: Bearer ...`. Keys are held only as SHA-256 hashes; a
key generated on first start is written hashed to the data directory and shown once, so nothing
on disk can be replayed as a key. A few read-only routes also take a signed link token for one
resource (the operator page's `operator:{id}`), so a link can be handed to someone without an
API key. Which of these a request needs is read from the route aiohttp matched: its `Auth` in
the route table (api/routing.py), never from lists of paths. A request no route matches needs
a backend under /api/ and nothing elsewhere (a 405 as much as the path's most open route), so
an unknown path tells a caller without credentials nothing about the routes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from api.entra import EntraTokens, looks_like_jwt
from api.http import error_response
from api.link_tokens import LinkTokenError, LinkTokens
from api.routing import BACKEND, PUBLIC, SELF_AUTHENTICATED, Access, Auth, RouteTable
from errors import IdentityProviderUnavailable, TokenRejected
from private_file import read_or_create_private

__all__ = [
    "PRINCIPAL",
    "ApiKeyAuth",
    "Principal",
    "api_key_hashes",
    "ensure_generated_key",
    "from_backend",
    "hash_key",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request was authenticated as."""

    kind: Literal["api-key", "entra", "link"]
    subject: str = ""
    """The calling app's client id (entra), the link token's purpose (link); "" for a key."""

    @property
    def backend(self) -> bool:
        """A backend (API key or Entra ID token): may act for any user."""
        return self.kind != "link"


PRINCIPAL = web.RequestKey("herald_principal", Principal)


def from_backend(request: web.Request) -> bool:
    """The request comes from a backend: an API key, or an Entra ID token the middleware
    accepted. Every route passes the middleware, which records who called (for handlers of
    self-authenticated routes, which also take other proofs)."""
    principal = request.get(PRINCIPAL)
    return principal is not None and principal.backend
"""Set on every request the middleware let through with credentials."""

def _bearer(header: str | None) -> str | None:
    scheme, _, credential = (header or "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


def _challenge(error: str | None = None, description: str | None = None) -> str:
    value = 'Bearer realm="herald"'
    if error:
        value += f', error="{error}"'
    if description:
        value += ', error_description="' + description.replace('"', "'") + '"'
    return value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_generated_key(data_dir: Path) -> tuple[list[str], str | None]:
    """Hashes of the generated key(s); creates one on first start and returns it (once)."""
    path = data_dir / "api-keys.sha256"
    key = "hk_" + secrets.token_urlsafe(32)
    for _ in range(2):
        content, created = read_or_create_private(path, lambda: (hash_key(key) + "\n").encode())
        hashes = [line.strip() for line in content.decode().splitlines() if line.strip()]
        if hashes:
            return hashes, key if created else None
        path.unlink(missing_ok=True)  # an empty file holds no key: make one
    raise OSError(f"{path} stays empty")


def api_key_hashes(keys: Iterable[str], data_dir: Path) -> tuple[list[str], str | None]:
    """Hashes of the configured keys (HERALD_API_KEYS); with none configured, of the key
    generated under the data dir, and that key itself the one time it is created, so a fresh
    install can be used at once and the key is never stored in the clear."""
    configured = [hash_key(key) for key in keys]
    if configured:
        return configured, None
    return ensure_generated_key(data_dir)


class ApiKeyAuth:
    """`Authorization: Bearer <key>` against a set of key hashes, or an Entra ID access token,
    or (on the routes whose `Auth` names a link purpose) a link token for that purpose."""

    def __init__(
        self,
        key_hashes: Iterable[str],
        *,
        routes: RouteTable,
        entra: EntraTokens | None = None,
        links: LinkTokens | None = None,
    ) -> None:
        self._hashes = tuple(key_hashes)
        self._routes = routes
        self._entra = entra
        self._links = links

    def check(self, header: str | None) -> bool:
        """Whether the header carries one of the API keys (keys only; see `is_backend`)."""
        key = _bearer(header)
        if key is None:
            return False
        digest = hash_key(key)
        # Compare against every hash so timing does not reveal which one matched.
        matched = False
        for known in self._hashes:
            matched |= hmac.compare_digest(digest, known)
        return matched

    async def _auth(self, request: web.Request) -> Auth:
        route = self._routes.matched(request)
        if route is not None:
            return route.auth
        refused = request.match_info.http_exception
        if refused is not None and refused.status == 405:
            # A served path, another method: as open as the path's most open route, so the
            # caller hears the 405 where it could call the path at all.
            declared = {route.auth.access for route in await self._routes.on_path(request)}
            for auth in (PUBLIC, SELF_AUTHENTICATED):
                if auth.access in declared:
                    return auth
        return BACKEND if request.path.startswith("/api/") else PUBLIC

    async def _entra_principal(self, token: str) -> Principal | web.Response:
        assert self._entra is not None
        try:
            principal = await self._entra.verify(token)
        except TokenRejected as exc:
            # The reason only: never the token (nor claims read from a token not verified).
            log.info("Entra ID token refused (%d): %s", exc.status, exc.reason)
            error = "insufficient_scope" if exc.status == 403 else "invalid_token"
            return error_response(
                exc.status,
                "forbidden" if exc.status == 403 else "unauthorized",
                exc.reason,
                headers={"WWW-Authenticate": _challenge(error, exc.reason)},
            )
        except IdentityProviderUnavailable as exc:
            log.warning("cannot check an Entra ID token: %s", exc)
            return error_response(
                503,
                "identity_provider_unavailable",
                "the identity provider's signing keys cannot be read just now; try again",
                headers={"Retry-After": "5"},
            )
        return Principal("entra", principal.app_id)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = await self._auth(request)
        if auth.access is Access.PUBLIC:
            return await handler(request)
        header = request.headers.get("Authorization")
        if self.check(header):
            request[PRINCIPAL] = Principal("api-key")
            return await handler(request)
        credential = _bearer(header)
        # Link tokens are JWTs too (HS256, Herald's own key): tried first, locally, on the
        # routes that take them; never sent to the Entra ID check (pages check their own).
        purpose = None if auth.link is None else auth.link(request)
        if credential is not None and purpose is not None and self._links is not None:
            try:
                self._links.verify(credential, purpose)
            except LinkTokenError:
                pass
            else:
                request[PRINCIPAL] = Principal("link", purpose)
                return await handler(request)
        if (
            credential is not None
            and self._entra is not None
            and looks_like_jwt(credential)
            and not LinkTokens.looks_like_link(credential)
        ):
            verified = await self._entra_principal(credential)
            if isinstance(verified, web.Response):
                return verified
            request[PRINCIPAL] = verified
            return await handler(request)
        if auth.access is Access.SELF_AUTHENTICATED:
            return await handler(request)
        return error_response(
            401,
            "unauthorized",
            "a valid API key or Entra ID access token is required (Authorization: Bearer ...)"
            if purpose is None
            else "a valid API key, Entra ID access token or link token is required "
            "(Authorization: Bearer ...)",
            headers={"WWW-Authenticate": _challenge()},
        )
