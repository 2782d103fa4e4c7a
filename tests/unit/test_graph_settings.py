"""Microsoft Graph settings: off unless complete, secrets masked, nonsense refused by name."""

from __future__ import annotations

import pytest

from config import Settings
from errors import SettingsError
from sources.graph import GraphConfig

COMPLETE = {
    "GRAPH_TENANT_ID": "contoso-tenant",
    "GRAPH_CLIENT_ID": "herald-graph-app",
    "GRAPH_CLIENT_SECRET": "graph-secret-value",
}


def test_off_by_default_on_when_complete() -> None:
    off = Settings.from_env({}, env_file=None)
    assert not off.graph_configured
    assert GraphConfig.from_settings(off) is None
    on = Settings.from_env(COMPLETE, env_file=None)
    config = GraphConfig.from_settings(on)
    assert config is not None
    assert config.authority == "https://login.microsoftonline.com/contoso-tenant"
    assert config.base_url == "https://graph.microsoft.com/v1.0"
    assert (on.graph_subscription_minutes, on.graph_renew_before_minutes) == (4230, 720)
    text = repr(on) + str(on) + repr(config)
    assert "graph-secret-value" not in text


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GRAPH_TENANT_ID": "t"}, "GRAPH_CLIENT_SECRET"),
        ({**COMPLETE, "GRAPH_CLIENT_ID": ""}, "GRAPH_CLIENT_ID"),
        ({**COMPLETE, "GRAPH_AUTHORITY_HOST": "http://login.example.com"}, "GRAPH_AUTHORITY_HOST"),
        ({**COMPLETE, "GRAPH_SUBSCRIPTION_MINUTES": "5000"}, "GRAPH_SUBSCRIPTION_MINUTES"),
        ({**COMPLETE, "GRAPH_RENEW_BEFORE_MINUTES": "4230"}, "GRAPH_RENEW_BEFORE_MINUTES"),
    ],
)
def test_incomplete_or_impossible_settings_are_refused(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env, env_file=None)
    assert named in str(err.value)
    assert "graph-secret-value" not in str(err.value)
