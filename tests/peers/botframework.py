"""A stand-in for the Bot Framework's token signers, on loopback: the OpenID metadata and
signing keys that channel tokens (issuer `https://api.botframework.com`) and Emulator tokens
(Entra ID issuers) are checked against.

The Bot Connector service signs the JWT it sends with every activity; botbuilder fetches the
signing keys from `https://login.botframework.com/v1/.well-known/openidconfiguration` (channel
tokens) and from Entra ID's `botframework.com` tenant (Emulator and skill tokens). Herald points
the SDK at this stand-in instead (`ToBotFromChannelOpenIdMetadataUrl`,
`ToBotFromEmulatorOpenIdMetadataUrl`), so tests can send activities with valid tokens - and with
tokens of any other shape - without a byte leaving the machine.

Like the real keys, channel keys carry `endorsements`: the channel ids a key may sign for (an
activity whose `channelId` is not endorsed is refused by the SDK).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Final

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.peers.loopback import LoopbackServer

__all__ = [
    "CHANNEL_ISSUER",
    "EMULATOR_ISSUER",
    "ENDORSED_CHANNELS",
    "BotFrameworkTokens",
]

CHANNEL_ISSUER: Final = "https://api.botframework.com"
"""The issuer of the tokens the Bot Connector service sends with activities."""
EMULATOR_ISSUER: Final = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
"""One of the Entra ID issuers botbuilder takes for Emulator tokens (Auth v3.1, 1.0 token)."""
ENDORSED_CHANNELS: Final = ("msteams", "webchat", "directline", "emulator", "test")
"""Channels the stand-in's channel key endorses."""

CHANNEL_METADATA_PATH: Final = "/v1/.well-known/openidconfiguration"
EMULATOR_METADATA_PATH: Final = "/botframework.com/v2.0/.well-known/openid-configuration"


class BotFrameworkTokens(LoopbackServer):
    """OpenID metadata + JWKS for channel and Emulator tokens, and a signer for both."""

    def __init__(self) -> None:
        super().__init__()
        # RSA keys take a moment to make: two per stand-in (channel, Emulator) is enough.
        self.channel_kid = f"channel-{secrets.token_hex(4)}"
        self.emulator_kid = f"emulator-{secrets.token_hex(4)}"
        self._keys: dict[str, rsa.RSAPrivateKey] = {
            self.channel_kid: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            self.emulator_kid: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self._stranger: rsa.RSAPrivateKey | None = None
        self.metadata_requests = 0

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(CHANNEL_METADATA_PATH, self._channel_metadata)
        app.router.add_get("/v1/.well-known/keys", self._channel_keys)
        app.router.add_get(EMULATOR_METADATA_PATH, self._emulator_metadata)
        app.router.add_get("/common/discovery/v2.0/keys", self._emulator_keys)
        return app

    def env(self) -> dict[str, str]:
        """Herald's settings that point botbuilder's token validation here."""
        return {
            "ToBotFromChannelOpenIdMetadataUrl": self.url + CHANNEL_METADATA_PATH,
            "ToBotFromEmulatorOpenIdMetadataUrl": self.url + EMULATOR_METADATA_PATH,
        }

    # --- tokens ---------------------------------------------------------------------------

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
        omit_kid: bool = False,
    ) -> str:
        """A JWT with exactly these claims, signed with the channel key (or the key `kid`
        names; an unknown `kid` is signed with a key nobody publishes)."""
        kid = kid or self.channel_kid
        key = self._keys.get(kid)
        if key is None:
            if self._stranger is None:
                self._stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._stranger
        head = {"typ": "JWT", **({} if omit_kid else {"kid": kid}), **(headers or {})}
        secret: Any = key
        if algorithm.startswith("HS"):
            secret = b"a shared secret of at least thirty-two bytes!"
        return jwt.encode(claims, secret, algorithm=algorithm, headers=head)

    def channel_token(self, app_id: str, service_url: str, **overrides: Any) -> str:
        """The token the Bot Connector sends with an activity for the bot `app_id`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": service_url,
            "nbf": now - 5,
            "exp": now + 3600,
            "iss": CHANNEL_ISSUER,
            "aud": app_id,
        }
        claims.update(overrides)
        return self.sign({k: v for k, v in claims.items() if v is not None})

    def emulator_token(self, app_id: str, **overrides: Any) -> str:
        """A token as the Emulator sends it when a bot's app id is configured in it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": app_id,
            "iss": EMULATOR_ISSUER,
            "appid": app_id,
            "ver": "1.0",
            "nbf": now - 5,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return self.sign({k: v for k, v in claims.items() if v is not None}, kid=self.emulator_kid)

    # --- HTTP -----------------------------------------------------------------------------

    def _jwk(self, kid: str, **extra: Any) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._keys[kid].public_key()))
        return {**public, "kid": kid, "use": "sig", **extra}

    async def _channel_metadata(self, request: web.Request) -> web.Response:
        self.metadata_requests += 1
        return web.json_response(
            {
                "issuer": CHANNEL_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _channel_keys(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"keys": [self._jwk(self.channel_kid, endorsements=list(ENDORSED_CHANNELS))]}
        )

    async def _emulator_metadata(self, request: web.Request) -> web.Response:
        self.metadata_requests += 1
        return web.json_response(
            {"issuer": EMULATOR_ISSUER, "jwks_uri": f"{self.url}/common/discovery/v2.0/keys"}
        )

    async def _emulator_keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self._jwk(self.emulator_kid)]})
