"""deployment/main.bicep, the Dockerfile and .dockerignore, checked against the code they deploy.

There is no Bicep CLI or Docker here, so the files are read as text. The parts of the template
parsed below keep a simple shape on purpose: `param` declarations with their decorators, the
`appSettings` and `graphAppSettings` objects (one `NAME: value` a line), the `cosmosContainers`
table (one `{ name, partitionKey, ttl }` a line) and `var deliveryQueueName`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import SecretStr

from api.health import HealthApi
from bots.endpoint import MessagesEndpoint
from config import Settings
from delivery.queue_azure import AzureDeliveryQueue
from errors import SettingsError
from storage.cosmos import CONTAINERS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deployment" / "main.bicep"
PARAMETERS = ROOT / "deployment" / "main.parameters.json"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

HERALD_SETTINGS = frozenset(Settings.environment_names())

# App settings the template may set that Herald does not read: App Service's own.
PLATFORM_SETTINGS = {
    # Zip deployments run Oryx, which installs requirements.txt into the app's virtualenv.
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    # The container port App Service's front end forwards to (must equal PORT).
    "WEBSITES_PORT",
}

# What a scaled-out deployment on Azure cannot do without, and why.
REQUIRED = {
    "MicrosoftAppId": "without it Herald runs in Emulator mode: no JWT checks, no Teams",
    "MicrosoftAppPassword": "the bot's client secret, for tokens to the Bot Connector",
    "MicrosoftAppType": "must agree with the Azure Bot's msaAppType",
    "MicrosoftAppTenantId": "SingleTenant bots need their tenant (create_app refuses without)",
    "HOST": "the default 127.0.0.1 is unreachable from App Service's front end",
    "PORT": "the port the front end forwards to (WEBSITES_PORT)",
    "HERALD_PUBLIC_URL": "links the bot sends and Graph's notification URL; default is localhost",
    "HERALD_STORE": "cosmos: several instances share one store",
    "HERALD_QUEUE": "azure: several instances share one delivery queue",
    "COSMOS_ENDPOINT": "where the store is",
    "COSMOS_DATABASE": "the database the template creates",
    "AZURE_STORAGE_CONNECTION_STRING": "where the queue is",
    "AZURE_STORAGE_QUEUE": "the queue the template creates",
    "HERALD_API_KEYS": "generated per instance when empty: backends need keys every one accepts",
    "HERALD_LINK_SECRET": "generated per instance when empty: links from one would fail on another",
    "WEBPUSH_VAPID_PRIVATE_KEY": "generated per instance when empty: each would sign with its own",
    "WEBPUSH_VAPID_SUBJECT": "mailto:herald@localhost is no contact push services accept",
}

# Secure parameters allowed an (empty) default: optional features, off when empty.
OPTIONAL_SECRETS = {"graphClientSecret": "calendar notifications are optional"}

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


# --- parsing -------------------------------------------------------------------------------------


@dataclass
class Param:
    name: str
    type: str
    default: str | None
    decorators: list[str] = field(default_factory=list)

    @property
    def secure(self) -> bool:
        return any(d.startswith("@secure(") for d in self.decorators)


def _template() -> str:
    return TEMPLATE.read_text()


def _params(text: str) -> dict[str, Param]:
    """Every `param` with the decorators above it (which may span lines, like `@allowed`)."""
    params: dict[str, Param] = {}
    pending: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("@"):
            decorator = stripped
            while decorator.count("(") > decorator.count(")"):
                decorator += " " + next(lines).strip()
            pending.append(decorator)
            continue
        match = re.match(r"param (\w+) (\w+)(?: = (.+))?$", stripped)
        if match:
            name, type_, default = match.groups()
            params[name] = Param(name, type_, default, pending)
        if stripped and not stripped.startswith("//"):
            pending = []
    return params


def _object_var(text: str, name: str) -> dict[str, str]:
    """The entries of `var <name> = { ... }` (one `KEY: value` a line)."""
    match = re.search(rf"^var {name} = \{{\n(.*?)^\}}", text, re.M | re.S)
    assert match, f"var {name} not found in {TEMPLATE.name}"
    entries: dict[str, str] = {}
    for line in match.group(1).splitlines():
        entry = re.match(r"  (\w+): (.+)$", line)
        if entry:
            key, value = entry.groups()
            assert key not in entries, f"{key} is set twice"
            entries[key] = value.strip()
        else:
            assert not line.strip() or line.strip().startswith("//"), f"unparsed: {line!r}"
    return entries


def _string_var(text: str, name: str) -> str:
    match = re.search(rf"^var {name} = '([^']*)'$", text, re.M)
    assert match, f"var {name} not found"
    return match.group(1)


def _resources(text: str) -> dict[str, str]:
    """Symbolic name → resource type (without the API version)."""
    return dict(re.findall(r"^resource (\w+) '([^'@]+)@[^']+'", text, re.M))


def _resource_body(text: str, symbol: str) -> str:
    match = re.search(rf"^resource {symbol} .*?^[\]}}]$", text, re.M | re.S)
    assert match, f"resource {symbol} not found"
    return match.group(0)


def _app_settings() -> dict[str, str]:
    text = _template()
    return {**_object_var(text, "appSettings"), **_object_var(text, "graphAppSettings")}


def _literal(value: str) -> str | None:
    """The text of a plain Bicep string literal (no interpolation), else None."""
    match = re.fullmatch(r"'([^'$]*)'", value)
    return match.group(1) if match else None


def _is_secret_field(alias: str) -> bool:
    for name, info in Settings.model_fields.items():
        if (info.alias or name) == alias:
            annotation = info.annotation
            return annotation is SecretStr or SecretStr in get_args(annotation)
    raise AssertionError(f"{alias} is not a setting")


_INTERPOLATION = re.compile(r"\$\{[^{}]*\}")


def _secret_looking(text: str) -> list[str]:
    """Literal values in `text` that look like secrets (expressions `${...}` left out)."""
    while _INTERPOLATION.search(text):
        text = _INTERPOLATION.sub("", text)
    text = re.sub(r"https?://[^\s'\"?]*", "", text)  # addresses, not their query strings
    found = re.findall(r"-----BEGIN [A-Z ]+-----", text)
    found += re.findall(r"AccountKey=[^;'\"\s]+", text)
    found += re.findall(r"\bhk_[A-Za-z0-9_-]{8,}", text)
    for token in re.findall(r"[A-Za-z0-9+/=_-]{24,}", text):
        # Random keys mix cases and digits; identifiers, setting names and GUIDs of built-in
        # roles do not.
        if re.search(r"[a-z]", token) and re.search(r"[A-Z]", token) and re.search(r"\d", token):
            found.append(token)
    return found


# --- app settings --------------------------------------------------------------------------------


def test_every_app_setting_is_one_herald_reads() -> None:
    names = set(_app_settings())
    assert PLATFORM_SETTINGS.isdisjoint(HERALD_SETTINGS)
    unknown = names - HERALD_SETTINGS - PLATFORM_SETTINGS
    assert not unknown, f"the template sets settings Herald never reads: {sorted(unknown)}"


def test_every_setting_this_deployment_needs_is_set() -> None:
    assert set(REQUIRED) <= HERALD_SETTINGS, "REQUIRED names a setting Herald does not have"
    missing = set(REQUIRED) - set(_object_var(_template(), "appSettings"))
    assert not missing, f"not set by the template: {sorted(missing)}"


def test_everything_generated_per_instance_is_configured() -> None:
    """A setting Herald fills in on first start under its data dir would differ per instance
    (and vanish with it): the template must provide every one of them."""
    generated = {
        info.alias or name
        for name, info in Settings.model_fields.items()
        if "generated on first start" in (info.description or "")
    }
    assert generated == {"HERALD_API_KEYS", "HERALD_LINK_SECRET", "WEBPUSH_VAPID_PRIVATE_KEY"}
    assert generated <= set(_object_var(_template(), "appSettings"))


def test_secrets_are_key_vault_references_to_secrets_the_template_stores() -> None:
    text = _template()
    settings = _app_settings()
    resources = _resources(text)
    secret_resources = {s for s, t in resources.items() if t == "Microsoft.KeyVault/vaults/secrets"}
    secret_names = {
        re.search(r"name: (.+)", _resource_body(text, s)).group(1)  # type: ignore[union-attr]
        for s in secret_resources
    }
    secret_settings = [name for name in settings if name in HERALD_SETTINGS
                       and _is_secret_field(name)]
    assert "MicrosoftAppPassword" in secret_settings  # the check below sees secrets
    for name in secret_settings:
        value = settings[name]
        match = re.fullmatch(
            r"'@Microsoft\.KeyVault\(SecretUri=(?:"
            r"\$\{(?P<symbol>\w+)\.properties\.secretUri\}"
            r"|\$\{vault\.properties\.vaultUri\}secrets/\$\{(?P<var>\w+)\})\)'",
            value,
        )
        assert match, f"{name} is a secret but not a Key Vault reference: {value}"
        if match["symbol"]:
            assert match["symbol"] in secret_resources, f"{name}: no secret {match['symbol']}"
        else:
            stored = f"'{_string_var(text, match['var'])}'"
            assert stored in secret_names or match["var"] in secret_names, name
    # Non-secret values never come from a secure parameter.
    secure = {p.name for p in _params(text).values() if p.secure}
    for name, value in settings.items():
        assert value not in secure, f"{name} is set from a secure parameter in the clear"


def test_the_web_app_may_read_the_secrets() -> None:
    text = _template()
    vault = _resource_body(text, "vault")
    assert "enableRbacAuthorization: true" in vault
    role = _resource_body(text, "webAppReadsSecrets")
    assert KEY_VAULT_SECRETS_USER in text and "roleDefinitionId: keyVaultSecretsUserRole" in role
    assert "principalId: webApp.identity.principalId" in role
    assert "scope: vault" in role
    settings_resource = _resource_body(text, "webAppSettings")
    assert "webAppReadsSecrets" in settings_resource  # references resolve once it exists


def test_cosmos_is_reached_with_the_managed_identity() -> None:
    """No COSMOS_KEY: Herald falls back to DefaultAzureCredential, which needs a data-plane role
    (and cannot create the database and containers, hence the template does)."""
    text = _template()
    assert "COSMOS_KEY" not in _app_settings()
    account = _resource_body(text, "cosmos")
    assert "disableLocalAuth: true" in account
    assert "name: 'EnableServerless'" in account
    role = _resource_body(text, "webAppUsesCosmos")
    assert f"var cosmosDataContributorRole = '{COSMOS_DATA_CONTRIBUTOR}'" in text
    assert "sqlRoleDefinitions/${cosmosDataContributorRole}" in role
    assert "principalId: webApp.identity.principalId" in role


def test_the_settings_make_a_valid_scaled_out_herald() -> None:
    """The template's literal values, with samples for what Azure fills in, pass config.py."""
    samples = {
        "COSMOS_ENDPOINT": "https://herald-cosmos.documents.azure.com:443/",
        "HERALD_PUBLIC_URL": "https://herald.azurewebsites.net",
        "MicrosoftAppId": "00000000-0000-0000-0000-000000000001",
        "MicrosoftAppTenantId": "00000000-0000-0000-0000-000000000002",
        "MicrosoftAppType": "SingleTenant",
        "WEBPUSH_VAPID_SUBJECT": "mailto:ops@example.com",
        "PORT": "8000",
        "WEBSITES_PORT": "8000",
        "AZURE_STORAGE_QUEUE": "herald-deliveries",
        "COSMOS_DATABASE": "herald",
        "GRAPH_TENANT_ID": "00000000-0000-0000-0000-000000000003",
        "GRAPH_CLIENT_ID": "00000000-0000-0000-0000-000000000004",
    }
    env: dict[str, str] = {}
    for name, value in _app_settings().items():
        literal = _literal(value)
        if literal is not None:
            env[name] = literal
        elif value.startswith("'@Microsoft.KeyVault("):
            env[name] = secrets.token_urlsafe(32)
        else:
            assert name in samples, f"no sample for {name} = {value}"
            env[name] = samples[name]
    settings = Settings.from_env(env, env_file=None)
    assert settings.store == "cosmos" and settings.queue == "azure"
    assert settings.host == "0.0.0.0"
    assert not settings.emulator_mode
    assert settings.public_url.startswith("https://")
    assert settings.graph_configured  # graphAppSettings holds all three or none of them
    text = _template()
    assert "PORT: string(appPort)" in text and "WEBSITES_PORT: string(appPort)" in text
    # The instances share each tenant's budget (Cosmos DB): Teams' published 50/s, not a share
    # of it that autoscale would break.
    assert settings.tenant_rate == 50.0
    assert "HERALD_TENANT_RATE" not in _app_settings()


def test_secure_parameters_never_reach_the_settings_unreferenced() -> None:
    """Each secret parameter is stored in Key Vault (a secret resource takes its value)."""
    text = _template()
    for param in _params(text).values():
        if param.secure:
            assert re.search(rf"^\s+value: {param.name}$", text, re.M), param.name


# --- Cosmos DB and the queue ---------------------------------------------------------------------


def test_cosmos_containers_are_the_ones_herald_uses() -> None:
    text = _template()
    block = re.search(r"^var cosmosContainers = \[\n(.*?)^\]", text, re.M | re.S)
    assert block
    rows = re.findall(
        r"\{ name: '(\w+)', partitionKey: '([^']+)', ttl: (true|false) \}", block.group(1)
    )
    assert len(rows) == len([line for line in block.group(1).splitlines() if "{" in line])
    in_template = {name: (key, ttl == "true") for name, key, ttl in rows}
    expected = {name: (spec.partition_key, spec.ttl) for name, spec in CONTAINERS.items()}
    assert in_template == expected
    container = _resource_body(text, "cosmosContainer")
    assert "for container in cosmosContainers" in container
    assert "paths: [\n            container.partitionKey\n          ]" in container
    # ttl=True: defaultTtl -1, so per-document `ttl` works and nothing else expires.
    assert "container.ttl ? { defaultTtl: -1 } : {}" in container
    assert _string_var(text, "cosmosDatabaseName") == Settings.model_fields[
        "cosmos_database"
    ].default
    assert _app_settings()["COSMOS_DATABASE"] == "cosmosDatabaseName"


def test_the_queues_are_the_ones_herald_uses() -> None:
    text = _template()
    name = _string_var(text, "deliveryQueueName")
    assert name == Settings.model_fields["azure_storage_queue"].default
    queue = AzureDeliveryQueue("", name)
    queues = _resource_body(text, "deliveryQueues")
    assert "for queueName in [deliveryQueueName, '${deliveryQueueName}-poison']" in queues
    assert queue.poison_name == f"{name}-poison"
    assert _app_settings()["AZURE_STORAGE_QUEUE"] == "deliveryQueueName"
    connection = _resource_body(text, "storageConnectionSecret")
    assert "AccountKey=${storage.listKeys().keys[0].value}" in connection


# --- Web App and bot -----------------------------------------------------------------------------


def test_the_web_app_runs_herald() -> None:
    web_app = _resource_body(_template(), "webApp")
    health_paths = {r.path for r in HealthApi(None, None).routes()}  # type: ignore[arg-type]
    assert "/healthz" in health_paths
    for expected in (
        "kind: 'app,linux'",
        "type: 'SystemAssigned'",
        "httpsOnly: true",
        "linuxFxVersion: 'PYTHON|3.11'",
        "appCommandLine: 'python app.py'",
        "alwaysOn: true",
        "healthCheckPath: '/healthz'",
    ):
        assert expected in web_app, expected
    plan = _resource_body(_template(), "plan")
    assert "reserved: true" in plan


def test_the_bot_points_at_herald_and_has_teams() -> None:
    text = _template()
    bot = _resource_body(text, "bot")
    messages = {r.path for r in MessagesEndpoint(None, None).routes()}  # type: ignore[arg-type]
    assert messages == {"/api/messages"}
    assert "kind: 'azurebot'" in bot
    assert "endpoint: 'https://${webApp.properties.defaultHostName}/api/messages'" in bot
    assert "msaAppId: microsoftAppId" in bot
    assert "msaAppType: microsoftAppType" in bot
    # Herald and the bot agree on the app registration.
    assert _app_settings()["MicrosoftAppType"] == "microsoftAppType"
    assert _app_settings()["MicrosoftAppTenantId"] == "botTenantId"
    assert "msaAppTenantId: botTenantId" in bot
    allowed = next(d for d in _params(text)["microsoftAppType"].decorators if "@allowed" in d)
    app_types = set(re.findall(r"'(\w+)'", allowed))
    assert app_types and app_types <= set(get_args(Settings.model_fields["app_type"].annotation))
    teams = _resource_body(text, "teamsChannel")
    assert "parent: bot" in teams and teams.count("MsTeamsChannel") == 2
    assert _resources(text)["teamsChannel"] == "Microsoft.BotService/botServices/channels"
    assert "output botMessagingEndpoint string" in text and "output webAppUrl string" in text


# --- parameters and secrets ----------------------------------------------------------------------


def test_every_parameter_is_described() -> None:
    params = _params(_template())
    assert len(params) > 10
    undescribed = [p.name for p in params.values()
                   if not any(d.startswith("@description(") for d in p.decorators)]
    assert not undescribed


def test_secret_parameters_are_secure_and_have_no_default() -> None:
    params = _params(_template())
    secretish = {n for n in params if re.search(r"password|secret|key|connection", n, re.I)}
    assert {"microsoftAppPassword", "heraldApiKeys", "linkSecret", "vapidPrivateKey"} <= secretish
    assert all(params[n].secure for n in secretish), [n for n in secretish if not params[n].secure]
    for param in params.values():
        if not param.secure:
            continue
        if param.name in OPTIONAL_SECRETS:
            assert param.default == "''", param.name
        else:
            assert param.default is None, f"{param.name} has a default"


def test_no_secret_values_in_the_deployment_files() -> None:
    assert _secret_looking(_template()) == []
    assert _secret_looking(PARAMETERS.read_text()) == []


@pytest.mark.parametrize(
    "value",
    [
        "hk_" + secrets.token_urlsafe(32),
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;EndpointSuffix=x",
        "-----BEGIN PRIVATE KEY-----",
        base64.b64encode(b"\x8a\x01" + secrets.token_bytes(30)).decode() + "aZ9",
    ],
)
def test_the_secret_detector_sees_secrets(value: str) -> None:
    assert _secret_looking(f"  value: '{value}'\n") != []


def test_the_example_parameters_are_declared_and_not_secret() -> None:
    document: dict[str, Any] = json.loads(PARAMETERS.read_text())
    given = document["parameters"]
    params = _params(_template())
    assert set(given) <= set(params), set(given) - set(params)
    assert not [n for n in given if params[n].secure], "secrets belong on the command line"
    required = {n for n, p in params.items() if p.default is None and not p.secure}
    assert required <= set(given), f"the example lacks {sorted(required - set(given))}"
    extra = given.get("extraAppSettings", {}).get("value", {})
    assert set(extra) <= HERALD_SETTINGS
    assert not [n for n in extra if _is_secret_field(n)], "no secrets in extraAppSettings"


def _readme_section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", (ROOT / "README.md").read_text(), re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_the_readme_documents_every_parameter_and_the_docker_run() -> None:
    section = _readme_section("Deploy to Azure")
    documented = set()
    for row in re.findall(r"^\| (`[^|]+) \|", section, re.M):
        documented |= set(re.findall(r"`(\w+)`", row))
    assert documented == set(_params(_template()))
    assert "az deployment group create" in section
    run = "docker build -t herald . && docker run -p 3978:3978 -v herald-data:/app/data herald"
    assert run in section


# --- container image -----------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), " ".join(rest.split())))
    return instructions


def test_the_image_runs_herald_as_a_user_on_the_configured_port() -> None:
    instructions = _dockerfile()
    kinds = [kind for kind, _ in instructions]
    args = dict(instructions)  # the last of each kind
    # The image Herald runs in (a first stage may only fetch the API reference viewer).
    assert [a for k, a in instructions if k == "FROM"][-1] == "python:3.11-slim"
    assert kinds.count("USER") >= 1 and args["USER"] not in {"root", "0", "0:0"}
    assert kinds.index("CMD") > max(i for i, k in enumerate(kinds) if k == "USER")
    assert json.loads(args["CMD"]) == ["python", "app.py"]
    assert args["EXPOSE"] == str(Settings.model_fields["port"].default)
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert "HOST=0.0.0.0" in env.split()
    assert any(k == "RUN" and "pip install" in a and "-r requirements.txt" in a
               for k, a in instructions)
    healthcheck = args["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "urllib" in healthcheck and "curl" not in healthcheck
    data_dir = re.search(r"HERALD_DATA_DIR=(\S+)", env)
    assert data_dir and data_dir.group(1) in args["VOLUME"]


def _image_env() -> dict[str, str]:
    """The environment the Dockerfile's ENV instructions give the container."""
    env: dict[str, str] = {}
    for kind, args in _dockerfile():
        if kind == "ENV":
            env.update(pair.split("=", 1) for pair in args.split())
    return env


def test_the_image_does_not_start_in_emulator_mode_on_every_interface() -> None:
    # Started as documented, with no settings: Emulator mode (no authentication) on 0.0.0.0
    # would let anyone who reaches the port act as any user; Herald refuses to start.
    env = _image_env()
    assert env["HOST"] == "0.0.0.0"
    assert "MicrosoftAppId" not in env and "HERALD_EMULATOR_ALLOW_REMOTE" not in env
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env, env_file=None)
    assert "MicrosoftAppId" in str(err.value)
    assert "HERALD_EMULATOR_ALLOW_REMOTE" in str(err.value)
    # With the bot's app registration (or the loudly named override) it starts.
    assert not Settings.from_env(
        {**env, "MicrosoftAppId": "00000000-0000-0000-0000-000000000001"}, env_file=None
    ).emulator_mode
    assert Settings.from_env(
        {**env, "HERALD_EMULATOR_ALLOW_REMOTE": "true"}, env_file=None
    ).emulator_allow_remote


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for entry in (".venv", "data", "node_modules", "tests/peers/node/node_modules", ".git",
                  ".env", "**/__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert entry in ignored, entry


def test_the_pinned_requirements_cover_the_azure_backends() -> None:
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert {"azure-cosmos", "azure-storage-queue", "azure-identity"} <= pinned
