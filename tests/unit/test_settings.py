"""Settings: Bot Framework names, defaults that need no configuration, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_configuration() -> None:
    settings = Settings.from_env({}, env_file=None)
    assert settings.port == 3978
    assert settings.host == "127.0.0.1"
    assert settings.emulator_mode
    assert settings.data_dir == Path("data")
    assert settings.throttled_channels == ("msteams",)


def test_bot_framework_names_and_lists() -> None:
    settings = Settings.from_env(
        {
            "MicrosoftAppId": "app",
            "MicrosoftAppPassword": "pw-secret",
            "MicrosoftAppType": "SingleTenant",
            "MicrosoftAppTenantId": "tenant",
            "HERALD_API_KEYS": " k1 , k2,,",
            "HERALD_CRITICAL_TYPES": "security.alert, it.outage",
            "PORT": "8080",
        },
        env_file=None,
    )
    assert not settings.emulator_mode
    assert settings.app_type == "SingleTenant"
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.critical_types == ("security.alert", "it.outage")
    assert settings.port == 8080


def test_secrets_never_show_in_repr() -> None:
    settings = Settings.from_env(
        {"MicrosoftAppPassword": "pw-secret", "HERALD_API_KEYS": "key-secret"}, env_file=None
    )
    text = repr(settings) + str(settings)
    assert "pw-secret" not in text and "key-secret" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "eighty"), ("PORT", "70000"), ("MicrosoftAppType", "Sometimes"),
     ("HERALD_WORKERS", "0"), ("HERALD_LOG_LEVEL", "LOUD"),
     ("WEBPUSH_ALLOWED_HOSTS", "push.example.com:https"), ("WEBPUSH_ALLOWED_HOSTS", "a/b:443"),
     ("HERALD_LINK_MAX_HOURS", "0"), ("HERALD_LINK_SECRET", "sixteen-byte-key")],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value, "MicrosoftAppPassword": "pw-secret"}, env_file=None)
    assert name in str(err.value)
    assert "pw-secret" not in str(err.value)


def test_env_file_fills_what_the_environment_lacks(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=4000\nHERALD_WORKERS=3\n")
    settings = Settings.from_env({"PORT": "5000"}, env_file=env_file)
    assert (settings.port, settings.workers) == (5000, 3)


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.environment_names() if f"`{name}`" not in readme]
    assert missing == []


def test_the_absolute_link_lifetime_is_no_shorter_than_a_link() -> None:
    with pytest.raises(SettingsError, match="HERALD_LINK_MAX_HOURS"):
        Settings.from_env(
            {"HERALD_LINK_MINUTES": "120", "HERALD_LINK_MAX_HOURS": "1"}, env_file=None
        )
