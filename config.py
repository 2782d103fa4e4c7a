"""Settings, read once at start-up from the environment and an optional `.env` file.

Names follow the Bot Framework samples (`MicrosoftAppId`, ...) so Azure App Service and Teams
users can reuse what they already have; Herald's own settings start with `HERALD_`. Nothing
below `app.py` reads `os.environ`: the frozen `Settings` object is passed in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from delivery.allowed_hosts import AllowedHosts
from errors import SettingsError
from proactive.service_url import LOOPBACK_HOSTS, parse_host_rule

__all__ = ["Settings"]


def _csv(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(v).strip() for v in value if str(v).strip())


def _loopback(host: str) -> bool:
    """Whether listening on `host` reaches this machine only."""
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseModel):
    """Every setting Herald reads. The alias is the environment variable's name."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # Bot Framework (names as in the Azure Bot resource and the samples' config.py).
    app_id: str = Field(
        "",
        alias="MicrosoftAppId",
        description="Bot's Entra ID app id. Empty = Emulator mode (no auth on /api/messages).",
    )
    app_password: SecretStr = Field(
        SecretStr(""),
        alias="MicrosoftAppPassword",
        description="Client secret of the bot's app registration.",
    )
    app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        "MultiTenant",
        alias="MicrosoftAppType",
        description="MultiTenant, SingleTenant or UserAssignedMSI.",
    )
    app_tenant_id: str = Field(
        "",
        alias="MicrosoftAppTenantId",
        description="Tenant of the app registration (SingleTenant / UserAssignedMSI).",
    )

    channel_openid_metadata_url: str = Field(
        "",
        alias="ToBotFromChannelOpenIdMetadataUrl",
        description="OpenID metadata of the keys that sign channels' tokens (botbuilder's "
        "setting of this name). Empty = the public cloud's; tests point it at a local stand-in.",
    )
    emulator_openid_metadata_url: str = Field(
        "",
        alias="ToBotFromEmulatorOpenIdMetadataUrl",
        description="OpenID metadata of the keys that sign Emulator and skill tokens "
        "(botbuilder's setting of this name). Empty = the public cloud's.",
    )

    # Web server.
    host: str = Field("127.0.0.1", alias="HOST", description="Address to listen on.")
    port: int = Field(3978, alias="PORT", ge=1, le=65535, description="Port to listen on.")
    emulator_allow_remote: bool = Field(
        False,
        alias="HERALD_EMULATOR_ALLOW_REMOTE",
        description="DANGER: let Emulator mode (no MicrosoftAppId: no authentication, every "
        "caller is whoever they claim to be) listen on a HOST other than loopback. Only for a "
        "throwaway machine nobody else can reach; logged as a warning at every start.",
    )
    emulator_service_hosts: tuple[str, ...] = Field(
        LOOPBACK_HOSTS,
        alias="HERALD_EMULATOR_SERVICE_HOSTS",
        description="In Emulator mode, the hosts (names, IP addresses or networks) an "
        "activity's serviceUrl may name; Herald sends nothing anywhere else.",
    )

    # Herald.
    data_dir: Path = Field(
        Path("./data"),
        alias="HERALD_DATA_DIR",
        description="Where the embedded store (SQLite) and generated secrets live.",
    )
    api_keys: tuple[SecretStr, ...] = Field(
        (),
        alias="HERALD_API_KEYS",
        description=(
            "Comma-separated API keys for backends (`Authorization: Bearer <key>`). If empty, "
            "one is generated on first start, stored hashed under the data dir and printed once."
        ),
    )
    max_body_bytes: int = Field(
        256 * 1024,
        alias="HERALD_MAX_BODY_BYTES",
        ge=1024,
        description="Largest accepted request body on the API; larger bodies get 413.",
    )
    workers: int = Field(
        64,
        alias="HERALD_WORKERS",
        ge=1,
        le=4096,
        description="Deliveries in flight at once in this process.",
    )
    lease_seconds: float = Field(
        60.0,
        alias="HERALD_LEASE_SECONDS",
        gt=0,
        description="How long a worker holds a delivery before another may take it.",
    )
    max_attempts: int = Field(
        8,
        alias="HERALD_MAX_ATTEMPTS",
        ge=1,
        description="Attempts per delivery before it is counted failed.",
    )
    retry_base_seconds: float = Field(
        1.0,
        alias="HERALD_RETRY_BASE_SECONDS",
        gt=0,
        description="First backoff delay; doubles each attempt (with jitter) up to the cap.",
    )
    retry_max_seconds: float = Field(
        300.0,
        alias="HERALD_RETRY_MAX_SECONDS",
        gt=0,
        description="Longest backoff delay between attempts.",
    )
    conversation_rate: float = Field(
        7.0,
        alias="HERALD_CONVERSATION_RATE",
        gt=0,
        description="Messages per second per conversation (Teams: 7/s per bot per thread).",
    )
    tenant_rate: float = Field(
        50.0,
        alias="HERALD_TENANT_RATE",
        gt=0,
        description="Messages per second per tenant (Teams: 50/s per app per tenant).",
    )
    throttled_channels: tuple[str, ...] = Field(
        ("msteams",),
        alias="HERALD_THROTTLED_CHANNELS",
        description="Channel ids whose conversations the token buckets apply to.",
    )
    opt_in_required: bool = Field(
        False,
        alias="HERALD_OPT_IN_REQUIRED",
        description="If true, nothing is delivered to a user until they opt in.",
    )
    critical_types: tuple[str, ...] = Field(
        (),
        alias="HERALD_CRITICAL_TYPES",
        description="Event types nobody can mute (delivered when urgency is high).",
    )
    history_days: int = Field(
        90,
        alias="HERALD_HISTORY_DAYS",
        ge=1,
        description="How long history (inbox) entries are kept.",
    )
    store: Literal["sqlite", "cosmos"] = Field(
        "sqlite", alias="HERALD_STORE",
        description="Where all state lives: `sqlite` (embedded, one instance) or `cosmos` "
        "(Azure Cosmos DB, shared by several instances; needs HERALD_QUEUE=azure).",
    )
    queue: Literal["sqlite", "azure"] = Field(
        "sqlite", alias="HERALD_QUEUE",
        description="The delivery queue: `sqlite` (in the embedded store) or `azure` (Azure "
        "Storage Queues, consumed by every instance; needs HERALD_STORE=cosmos).",
    )
    cosmos_endpoint: str = Field(
        "", alias="COSMOS_ENDPOINT",
        description="Cosmos DB account endpoint, e.g. `https://<account>.documents.azure.com:443/`"
        " (HERALD_STORE=cosmos).",
    )
    cosmos_key: SecretStr = Field(
        SecretStr(""), alias="COSMOS_KEY",
        description="Cosmos DB account key. If empty, Herald signs in with a managed identity "
        "(azure-identity's DefaultAzureCredential); the database and containers must then exist.",
    )
    cosmos_database: str = Field(
        "herald", alias="COSMOS_DATABASE", min_length=1, max_length=255,
        description="Cosmos DB database; it and its containers are created if missing.",
    )
    cosmos_verify_tls: bool = Field(
        True, alias="COSMOS_VERIFY_TLS",
        description="Verify the Cosmos DB endpoint's TLS certificate; false only for a local "
        "emulator with a self-signed certificate.",
    )
    azure_storage_connection_string: SecretStr = Field(
        SecretStr(""), alias="AZURE_STORAGE_CONNECTION_STRING",
        description="Connection string of the Storage account whose queue carries deliveries "
        "(HERALD_QUEUE=azure).",
    )
    azure_storage_queue: str = Field(
        "herald-deliveries", alias="AZURE_STORAGE_QUEUE", pattern=r"^[a-z0-9](?:-?[a-z0-9])*$",
        min_length=3, max_length=56,
        description="Name of the delivery queue (created if missing); failing messages go to "
        "`<name>-poison`.",
    )
    queue_max_dequeues: int = Field(
        5, alias="HERALD_QUEUE_MAX_DEQUEUES", ge=1, le=100,
        description="Times a queue message may be taken without its delivery being recorded "
        "(crashed or hung senders) before it moves to the poison queue and counts as failed.",
    )
    public_url: str = Field(
        "", alias="HERALD_PUBLIC_URL",
        description="Where people and services reach Herald (links the bot sends, push pages). "
        "Empty = `http://localhost:<PORT>`.",
    )
    link_secret: SecretStr = Field(
        SecretStr(""), alias="HERALD_LINK_SECRET",
        description=(
            "HS256 key (at least 32 bytes) for the short-lived links the bot sends (inbox, push "
            "consent, device sign-up). If empty, one is generated on first start and kept under "
            "the data dir."
        ),
    )
    link_minutes: int = Field(
        15, alias="HERALD_LINK_MINUTES", ge=1, le=24 * 60,
        description="How long a link the bot sends stays valid.",
    )
    link_max_hours: int = Field(
        12, alias="HERALD_LINK_MAX_HOURS", ge=1, le=7 * 24,
        description="The absolute lifetime of a link: an open page (inbox, operator) renews its "
        "token, but never past this many hours after the link was given.",
    )
    vapid_private_key: SecretStr = Field(
        SecretStr(""), alias="WEBPUSH_VAPID_PRIVATE_KEY",
        description=(
            "VAPID private key (PEM or base64url raw P-256) for Web Push. If empty, one is "
            "generated on first start and kept under the data dir."
        ),
    )
    webpush_allowed_hosts: tuple[str, ...] = Field(
        ("fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com",
         "push.apple.com"),
        alias="WEBPUSH_ALLOWED_HOSTS",
        description="Push services browser subscriptions may use: `host` (and its subdomains) "
        "on the default port (443 for https), `host:port`, or `host:*` for any port; IPv6 as "
        "`[::1]:port`. Herald posts to no other endpoint, and follows no redirect.",
    )
    vapid_subject: str = Field(
        "mailto:herald@localhost", alias="WEBPUSH_VAPID_SUBJECT",
        description="VAPID subject: a mailto: or https: contact for push services.",
    )
    firebase_credentials: Path | None = Field(
        None, alias="FIREBASE_CREDENTIALS",
        description="Path to a Firebase service-account JSON; without it mobile push is off.",
    )
    fcm_endpoint: str = Field(
        "https://fcm.googleapis.com", alias="FCM_ENDPOINT",
        description="Base URL of the FCM HTTP v1 API (tests point it at a local stand-in).",
    )
    apns_key_file: Path | None = Field(
        None, alias="APNS_KEY_FILE",
        description="Path to the APNs authentication key (the .p8 file from Apple Developer, "
        "Keys). With APNS_KEY_ID, APNS_TEAM_ID and APNS_BUNDLE_ID, Herald sends to iOS devices "
        "directly; without them APNs is off.",
    )
    apns_key_id: str = Field(
        "", alias="APNS_KEY_ID", description="The key's Key ID (10 characters, the JWT's kid).",
    )
    apns_team_id: str = Field(
        "", alias="APNS_TEAM_ID",
        description="The Apple Developer Team ID the key belongs to (the JWT's iss).",
    )
    apns_bundle_id: str = Field(
        "", alias="APNS_BUNDLE_ID",
        description="The iOS app's bundle id, e.g. com.contoso.field (the apns-topic).",
    )
    apns_endpoint: str = Field(
        "https://api.push.apple.com", alias="APNS_ENDPOINT",
        description="Base URL of APNs' production host (tests point it at a local stand-in).",
    )
    apns_sandbox_endpoint: str = Field(
        "https://api.sandbox.push.apple.com", alias="APNS_SANDBOX_ENDPOINT",
        description="Base URL of APNs' development host, for devices registered with "
        "distribution `debug` (or `development`).",
    )
    apns_ca_file: Path | None = Field(
        None, alias="APNS_CA_FILE",
        description="PEM file of the only CAs trusted for the APNs hosts. Empty = the system's "
        "trust store.",
    )
    mobile_prefer: Literal["fcm", "apns"] = Field(
        "fcm", alias="HERALD_MOBILE_PREFER",
        description="With FCM and APNs both on, which one sends to an iOS device registered "
        "with both tokens (never both).",
    )
    graph_tenant_id: str = Field(
        "", alias="GRAPH_TENANT_ID",
        description="Entra ID tenant whose calendars Herald may watch (Microsoft Graph). "
        "Graph is off unless the tenant, client id and secret are all set.",
    )
    graph_client_id: str = Field(
        "", alias="GRAPH_CLIENT_ID",
        description="Application (client) id of the app registration Herald calls Graph with "
        "(application permission Calendars.Read).",
    )
    graph_client_secret: SecretStr = Field(
        SecretStr(""), alias="GRAPH_CLIENT_SECRET",
        description="Client secret of that app registration.",
    )
    graph_authority_host: str = Field(
        "https://login.microsoftonline.com", alias="GRAPH_AUTHORITY_HOST",
        description="Entra ID host tokens come from (https; national clouds have their own).",
    )
    graph_base_url: str = Field(
        "https://graph.microsoft.com/v1.0", alias="GRAPH_BASE_URL",
        description="Microsoft Graph's base URL (tests point it at a local stand-in).",
    )
    graph_ca_file: Path | None = Field(
        None, alias="GRAPH_CA_FILE",
        description="PEM file of the only CAs trusted for Entra ID and Graph; proxy and CA "
        "environment variables are then not used for them. Empty = the system's trust store.",
    )
    graph_subscription_minutes: int = Field(
        4230, alias="GRAPH_SUBSCRIPTION_MINUTES", ge=10, le=4230,
        description="Lifetime asked for each Graph subscription (Outlook events allow at most "
        "4,230 minutes; Herald asks 5 minutes less than that at most, for clock skew).",
    )
    graph_renew_before_minutes: int = Field(
        720, alias="GRAPH_RENEW_BEFORE_MINUTES", ge=1,
        description="Renew a Graph subscription when less than this is left of it.",
    )
    teams_service_url: str = Field(
        "", alias="HERALD_TEAMS_SERVICE_URL",
        description="Bot Connector serviceUrl for opening chats with people of a Teams tenant "
        "no activity has come from yet (e.g. `https://smba.trafficmanager.net/teams/`); a "
        "tenant's own activities teach Herald its URL. Empty = only tenants heard from.",
    )
    teams_catalog_app_id: str = Field(
        "", alias="HERALD_TEAMS_CATALOG_APP_ID",
        description="The bot's Teams app id in the tenant's app catalog: with it (and "
        "Microsoft Graph configured), Herald installs the app for people an audience names who "
        "do not have it, then writes to them. Empty = never installs (they are counted "
        "`not-installable: installation-off`).",
    )
    auth_tenant_id: str = Field(
        "", alias="HERALD_AUTH_TENANT_ID",
        description="Entra ID tenant whose access tokens backends may use instead of an API key "
        "(`Authorization: Bearer <token>`). Off unless the tenant and audience are both set.",
    )
    auth_audience: tuple[str, ...] = Field(
        (), alias="HERALD_AUTH_AUDIENCE",
        description="Audience(s) an access token must be for, comma-separated: the application "
        "(client) id of Herald's API app registration and/or its Application ID URI.",
    )
    auth_role: str = Field(
        "Notifications.Send", alias="HERALD_AUTH_ROLE", min_length=1,
        description="App role a token must carry (`roles` claim) to use the API; without it: 403.",
    )
    auth_authority_host: str = Field(
        "https://login.microsoftonline.com", alias="HERALD_AUTH_AUTHORITY_HOST",
        description="Entra ID host whose OpenID configuration and signing keys (JWKS) are read "
        "(https; national clouds have their own).",
    )
    auth_ca_file: Path | None = Field(
        None, alias="HERALD_AUTH_CA_FILE",
        description="PEM file of the only CAs trusted for the Entra ID host; proxy and CA "
        "environment variables are then not used for it. Empty = the system's trust store.",
    )
    auth_clock_skew_seconds: int = Field(
        300, alias="HERALD_AUTH_CLOCK_SKEW_SECONDS", ge=0, le=3600,
        description="Clock skew tolerated when checking a token's expiry and not-before times.",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", alias="HERALD_LOG_FORMAT",
        description="Log lines as JSON (with request/notification ids) or text; auto = text on a "
        "terminal, JSON otherwise (containers).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="HERALD_LOG_LEVEL", description="Log level."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> tuple[str, ...]:
        return _csv(value)

    @field_validator(
        "throttled_channels", "critical_types", "webpush_allowed_hosts", "auth_audience",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> tuple[str, ...]:
        return _csv(value)

    @field_validator("webpush_allowed_hosts")
    @classmethod
    def _host_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        AllowedHosts(value)  # ValueError names an entry that is no host, host:port or host:*
        return value

    @field_validator("link_secret")
    @classmethod
    def _link_key_length(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and len(secret.encode()) < 32:
            # RFC 7518 §3.2: an HS256 key shorter than the hash is weaker than the signature.
            raise ValueError("must be empty (generated) or at least 32 bytes")
        return value

    @field_validator("emulator_service_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> tuple[str, ...]:
        hosts = _csv(value)
        for host in hosts:
            parse_host_rule(host)
        return hosts

    @model_validator(mode="after")
    def _emulator_on_loopback(self) -> Settings:
        """Emulator mode trusts every caller's identity: this machine's callers only, unless
        the operator says otherwise in as many words (DESIGN: Security)."""
        if self.emulator_mode and not self.emulator_allow_remote and not _loopback(self.host):
            raise ValueError(
                f"Emulator mode (no MicrosoftAppId) authenticates nobody, so it listens on "
                f"loopback only, and HOST={self.host} is not a loopback address. Set "
                "MicrosoftAppId (and MicrosoftAppPassword) for Bot Framework authentication, or "
                "HOST=127.0.0.1; or, on a machine nobody else can reach, "
                "HERALD_EMULATOR_ALLOW_REMOTE=true"
            )
        for name, url in (
            ("ToBotFromChannelOpenIdMetadataUrl", self.channel_openid_metadata_url),
            ("ToBotFromEmulatorOpenIdMetadataUrl", self.emulator_openid_metadata_url),
        ):
            if url and not url.startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL")
        return self

    @model_validator(mode="before")
    @classmethod
    def _public_url_follows_port(cls, data: Any) -> Any:
        """On a developer's machine the links the bot hands out point at the port Herald
        actually listens on (`PORT=4000 make run` must not send people to 3978)."""
        if not isinstance(data, Mapping):
            return data
        given = data.get("HERALD_PUBLIC_URL", data.get("public_url"))
        if given is not None and str(given).strip():
            return data
        port = str(data.get("PORT", data.get("port", 3978))).strip()
        rest = {k: v for k, v in data.items() if k not in ("HERALD_PUBLIC_URL", "public_url")}
        return {**rest, "HERALD_PUBLIC_URL": f"http://localhost:{port}"}

    @model_validator(mode="after")
    def _graph_complete(self) -> Settings:
        given = [
            name
            for name, value in (
                ("GRAPH_TENANT_ID", self.graph_tenant_id),
                ("GRAPH_CLIENT_ID", self.graph_client_id),
                ("GRAPH_CLIENT_SECRET", self.graph_client_secret.get_secret_value()),
            )
            if value
        ]
        if given and len(given) < 3:
            missing = {"GRAPH_TENANT_ID", "GRAPH_CLIENT_ID", "GRAPH_CLIENT_SECRET"} - set(given)
            raise ValueError(
                f"Microsoft Graph needs {', '.join(sorted(missing))} too (or none of them)"
            )
        if bool(self.auth_tenant_id) != bool(self.auth_audience):
            lacking = "HERALD_AUTH_AUDIENCE" if self.auth_tenant_id else "HERALD_AUTH_TENANT_ID"
            raise ValueError(f"Entra ID tokens need {lacking} too (or neither of them)")
        if not self.auth_authority_host.startswith("https://"):
            raise ValueError("HERALD_AUTH_AUTHORITY_HOST must be an https URL")
        if self.link_max_hours * 60 < self.link_minutes:
            raise ValueError("HERALD_LINK_MAX_HOURS cannot be shorter than HERALD_LINK_MINUTES")
        if self.store == "cosmos" and self.queue != "azure":
            raise ValueError(
                "HERALD_STORE=cosmos needs HERALD_QUEUE=azure: instances sharing one Cosmos DB "
                "must share one delivery queue too (the embedded queue lives in one instance's "
                "SQLite file)"
            )
        if self.queue == "azure" and self.store != "cosmos":
            raise ValueError(
                "HERALD_QUEUE=azure needs HERALD_STORE=cosmos: the delivery ledger (statuses, "
                "counters) must be shared by every instance that takes work from the queue"
            )
        if self.store == "cosmos" and not self.cosmos_endpoint.startswith(
            ("https://", "http://")
        ):
            raise ValueError("HERALD_STORE=cosmos needs COSMOS_ENDPOINT (an https URL)")
        if self.queue == "azure" and not self.azure_storage_connection_string.get_secret_value():
            raise ValueError("HERALD_QUEUE=azure needs AZURE_STORAGE_CONNECTION_STRING")
        apns = [
            name
            for name, value in (
                ("APNS_KEY_FILE", self.apns_key_file),
                ("APNS_KEY_ID", self.apns_key_id),
                ("APNS_TEAM_ID", self.apns_team_id),
                ("APNS_BUNDLE_ID", self.apns_bundle_id),
            )
            if value
        ]
        if apns and len(apns) < 4:
            missing = {"APNS_KEY_FILE", "APNS_KEY_ID", "APNS_TEAM_ID", "APNS_BUNDLE_ID"}
            raise ValueError(
                f"APNs needs {', '.join(sorted(missing - set(apns)))} too (or none of them)"
            )
        for name, url in (
            ("APNS_ENDPOINT", self.apns_endpoint),
            ("APNS_SANDBOX_ENDPOINT", self.apns_sandbox_endpoint),
        ):
            if not url.startswith("https://"):
                raise ValueError(f"{name} must be an https URL (APNs speaks HTTP/2 over TLS)")
        if not self.graph_authority_host.startswith("https://"):
            raise ValueError("GRAPH_AUTHORITY_HOST must be an https URL")
        if self.teams_catalog_app_id and not self.graph_configured:
            raise ValueError(
                "HERALD_TEAMS_CATALOG_APP_ID needs Microsoft Graph (GRAPH_TENANT_ID, "
                "GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET): Herald installs the app through Graph"
            )
        if self.teams_service_url and not self.teams_service_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError("HERALD_TEAMS_SERVICE_URL must be an http(s) URL")
        if self.graph_renew_before_minutes >= self.graph_subscription_minutes:
            raise ValueError(
                "GRAPH_RENEW_BEFORE_MINUTES must be less than GRAPH_SUBSCRIPTION_MINUTES"
            )
        return self

    @property
    def graph_configured(self) -> bool:
        """Calendar subscriptions through Microsoft Graph are on."""
        return bool(
            self.graph_tenant_id
            and self.graph_client_id
            and self.graph_client_secret.get_secret_value()
        )

    @property
    def apns_configured(self) -> bool:
        """Herald sends to iOS devices through APNs directly (token-based authentication)."""
        return bool(
            self.apns_key_file and self.apns_key_id and self.apns_team_id and self.apns_bundle_id
        )

    @property
    def entra_auth(self) -> bool:
        """Backends may authenticate with Entra ID access tokens (besides API keys)."""
        return bool(self.auth_tenant_id and self.auth_audience)

    @property
    def listens_on_loopback(self) -> bool:
        """HOST reaches this machine only."""
        return _loopback(self.host)

    @property
    def emulator_mode(self) -> bool:
        """No app id: the Bot Framework Emulator's local mode, no JWTs in or out."""
        return not self.app_id

    @property
    def database_path(self) -> Path:
        return self.data_dir / "herald.db"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], env_file: Path | None = Path(".env")) -> Settings:
        """Build settings from `environ`, falling back to `env_file` for names it lacks."""
        merged: dict[str, Any] = {}
        if env_file is not None and env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(environ)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                if err["loc"]
                else str(err["msg"]).removeprefix("Value error, ")
                for err in exc.errors()
            )
            raise SettingsError(f"invalid settings: {problems}") from None

    @classmethod
    def environment_names(cls) -> list[str]:
        """The environment variable names Herald reads (for docs and deployment checks)."""
        return [field.alias or name for name, field in cls.model_fields.items()]
