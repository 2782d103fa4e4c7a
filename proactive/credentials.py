"""Which credentials Herald's calls to the Bot Connector carry, from the bot's app registration.

Emulator mode (no MicrosoftAppId) sends none; a user-assigned managed identity asks the
platform's identity endpoint; otherwise the app id and password get client-credential tokens
from the tenant (SingleTenant) or from `botframework.com` (MultiTenant). msal is imported only
when an app registration is configured.
"""

from __future__ import annotations

from config import Settings
from proactive.connector import MsalTokenProvider, NoTokens, TokenProvider

__all__ = ["connector_tokens"]


def connector_tokens(settings: Settings) -> TokenProvider:
    if settings.emulator_mode:
        return NoTokens()
    import msal

    if settings.app_type == "UserAssignedMSI":

        def managed() -> object:
            import requests

            return msal.ManagedIdentityClient(
                msal.UserAssignedManagedIdentity(client_id=settings.app_id),
                http_client=requests.Session(),
            )

        return MsalTokenProvider(managed)

    tenant = settings.app_tenant_id if settings.app_type == "SingleTenant" else "botframework.com"

    def confidential() -> object:
        return msal.ConfidentialClientApplication(
            settings.app_id,
            client_credential=settings.app_password.get_secret_value(),
            authority=f"https://login.microsoftonline.com/{tenant}",
        )

    return MsalTokenProvider(confidential)
