"""How `/api/messages` checks the Bot Framework tokens of incoming activities (botbuilder's
configuration-based authentication), from the bot's app registration in the settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import AuthenticationConstants

from config import Settings

__all__ = ["BotConfig", "bot_authentication", "bot_config"]


@dataclass(frozen=True, slots=True)
class BotConfig:
    """The attribute names botbuilder's configuration-based authentication reads.

    Any of the `TO_*`/`OAUTH_URL`/`CALLER_ID` names set switches botbuilder to its
    parameterized authentication, which then needs them all (bot_config fills them in).
    """

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str
    APP_TENANTID: str
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    OAUTH_URL: str | None = None
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: str | None = None
    CALLER_ID: str | None = None


def bot_config(settings: Settings) -> BotConfig:
    """botbuilder's configuration: the public cloud, with the OpenID metadata URLs the
    settings name (Bot Framework mode only; Emulator mode checks no tokens)."""
    config = BotConfig(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password.get_secret_value(),
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.app_tenant_id,
    )
    channel_keys = settings.channel_openid_metadata_url
    emulator_keys = settings.emulator_openid_metadata_url
    if settings.emulator_mode or not (channel_keys or emulator_keys):
        return config
    return dataclasses.replace(
        config,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        OAUTH_URL=AuthenticationConstants.OAUTH_URL,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=channel_keys
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=emulator_keys
        or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        CALLER_ID=CallerIdConstants.public_azure_channel,
    )


def bot_authentication(settings: Settings) -> ConfigurationBotFrameworkAuthentication:
    return ConfigurationBotFrameworkAuthentication(bot_config(settings))
