"""Entra ID access tokens as the alternative to API keys on the backend APIs.

A backend with an app registration asks Entra ID for a token for Herald's API (client
credentials, scope `{Herald's app id URI}/.default`) and sends it as `Authorization: Bearer`.
Herald accepts it when, and only when:

- it is an RS256 JWT signed by one of the tenant's current signing keys, read from the JWKS
  that the tenant's OpenID configuration (`{authority}/{tenant}/v2.0/.well-known/...`) names;
- its issuer is that configuration's issuer (a v2.0 token of that tenant: set the API app
  registration's `accessTokenAcceptedVersion` to 2), its audience one of HERALD_AUTH_AUDIENCE,
  and it is within its lifetime (give or take HERALD_AUTH_CLOCK_SKEW_SECONDS);
- its `roles` claim holds HERALD_AUTH_ROLE (an app role the tenant's admin assigned to the
  backend's app). A valid token without it is a 403, anything else wrong a 401.

The configuration and keys are fetched on first use and cached. Entra ID rolls its keys over
regularly, so a token naming a key id Herald has not seen makes it read the JWKS again — at
most once per `refresh_cooldown`, so that tokens with made-up key ids cannot turn Herald into a
client hammering the tenant's endpoint. The token itself is never logged or kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
import jwt

from errors import IdentityProviderUnavailable, TokenRejected
from outbound.errors import map_transport_error

if TYPE_CHECKING:
    from config import Settings

__all__ = ["EntraConfig", "EntraPrincipal", "EntraTokens", "looks_like_jwt"]

log = logging.getLogger(__name__)

ALGORITHMS: Final = ("RS256",)
"""What Entra ID signs access tokens with; `none`, HS256 and the rest are refused."""


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS (three base64url parts, a JSON header): an Entra ID token, not a key."""
    parts = credential.split(".")
    return len(parts) == 3 and parts[0].startswith("eyJ") and all(parts[:2])


@dataclass(frozen=True, slots=True)
class EntraConfig:
    """Which tenant's tokens Herald accepts, for which audience and role."""

    tenant_id: str
    audiences: tuple[str, ...]
    role: str = "Notifications.Send"
    authority_host: str = "https://login.microsoftonline.com"
    ca_file: Path | None = None
    clock_skew_seconds: int = 300

    @property
    def metadata_url(self) -> str:
        return (
            f"{self.authority_host.rstrip('/')}/{self.tenant_id}"
            "/v2.0/.well-known/openid-configuration"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> EntraConfig | None:
        """The configuration, or None when Entra ID tokens are off (no tenant/audience)."""
        if not settings.entra_auth:
            return None
        return cls(
            tenant_id=settings.auth_tenant_id,
            audiences=settings.auth_audience,
            role=settings.auth_role,
            authority_host=settings.auth_authority_host,
            ca_file=settings.auth_ca_file,
            clock_skew_seconds=settings.auth_clock_skew_seconds,
        )


@dataclass(frozen=True, slots=True)
class EntraPrincipal:
    """Who a valid token speaks for (for logs: never the token)."""

    app_id: str
    """The calling app's client id (`azp`, or `appid` in v1.0 tokens)."""
    object_id: str
    roles: tuple[str, ...] = field(default=())


@dataclass(slots=True)
class _Keys:
    issuer: str
    jwks_uri: str
    keys: dict[str, jwt.PyJWK]
    loaded_at: float


class EntraTokens:
    """Verifies bearer tokens against the tenant's published keys (cached, refreshed)."""

    def __init__(
        self,
        config: EntraConfig,
        *,
        clock: Callable[[], float] = time.time,
        refresh_cooldown: float = 30.0,
        max_age: float = 24 * 3600.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._cooldown = refresh_cooldown
        self._max_age = max_age
        self._http = http
        self._own_http = http is None
        self._keys: _Keys | None = None
        self._last_kid_refresh = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def config(self) -> EntraConfig:
        return self._config

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            verify: ssl.SSLContext | bool = True
            if self._config.ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self._config.ca_file))
            # With a CA file configured, that file alone decides (no proxy or CA variables).
            self._http = httpx.AsyncClient(
                verify=verify, trust_env=self._config.ca_file is None, timeout=10.0,
                follow_redirects=False,  # DESIGN: outbound requests follow no redirects
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._client().get(url)
        except httpx.RequestError as exc:
            error = map_transport_error(exc)  # Herald's one reading of transport failures
            raise IdentityProviderUnavailable(f"cannot reach {url}: {error.reason}") from exc
        if response.status_code != 200:
            raise IdentityProviderUnavailable(f"{url} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise IdentityProviderUnavailable(f"{url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise IdentityProviderUnavailable(f"{url} did not answer a JSON object")
        return body

    async def _load(self, *, metadata: bool) -> _Keys:
        """Fetch the JWKS (and, when asked or never done, the OpenID configuration)."""
        current = self._keys
        if metadata or current is None:
            config = await self._get_json(self._config.metadata_url)
            issuer, jwks_uri = config.get("issuer"), config.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise IdentityProviderUnavailable("the OpenID configuration lacks issuer/jwks_uri")
        else:
            issuer, jwks_uri = current.issuer, current.jwks_uri
        document = await self._get_json(jwks_uri)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError:
                log.warning("ignoring an unusable key %s in the tenant's JWKS", entry["kid"])
        self._keys = _Keys(issuer, jwks_uri, keys, self._clock())
        log.info("read %d signing key(s) of tenant %s", len(keys), self._config.tenant_id)
        return self._keys

    async def _key(self, kid: str) -> tuple[jwt.PyJWK, str]:
        """The key with id `kid` and the expected issuer, reading the JWKS again if needed."""
        async with self._lock:  # concurrent requests share one fetch
            keys = self._keys
            if keys is None or self._clock() - keys.loaded_at > self._max_age:
                keys = await self._load(metadata=True)
            if kid not in keys.keys and self._clock() - self._last_kid_refresh >= self._cooldown:
                # A key Entra ID rolled over to: read the keys again (rate-limited).
                self._last_kid_refresh = self._clock()
                keys = await self._load(metadata=False)
            key = keys.keys.get(kid)
            if key is None:
                raise TokenRejected("signed with a key the tenant does not publish")
            return key, keys.issuer

    async def verify(self, token: str) -> EntraPrincipal:
        """The principal of a token Herald accepts; TokenRejected (401/403) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("not a well-formed JWT") from exc
        if header.get("alg") not in ALGORITHMS:
            raise TokenRejected(f"tokens must be signed with {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no signing key (kid)")
        key, issuer = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=list(self._config.audiences),
                issuer=issuer,
                leeway=self._config.clock_skew_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected(
                "the token is from another issuer (another tenant, or a v1.0 token: set the "
                "API's accessTokenAcceptedVersion to 2)"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the token's signature is not valid") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the token is not valid ({type(exc).__name__})") from exc
        roles = claims.get("roles")
        granted = tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        if self._config.role not in granted:
            raise TokenRejected(
                f"the token does not carry the app role {self._config.role}", status=403
            )
        return EntraPrincipal(
            app_id=str(claims.get("azp") or claims.get("appid") or ""),
            object_id=str(claims.get("oid") or ""),
            roles=granted,
        )
