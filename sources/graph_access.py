"""Microsoft Graph as this instance may use it, from its settings (all off unless configured).

One token cache serves change notifications (calendars), audiences (groups, team rosters) and
app installation; one client is Graph as a directory and, when the Teams app's catalog id is
set, as the installer that gives people who never wrote to the bot a chat with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from sources.graph import GraphClient, GraphConfig, MsalGraphTokens
from sources.graph_directory import GraphAppInstaller, GraphDirectory

__all__ = ["GraphAccess", "graph_access"]


@dataclass(frozen=True, slots=True)
class GraphAccess:
    config: GraphConfig | None
    tokens: MsalGraphTokens | None
    client: GraphClient | None
    """Opened and closed with the app (None: Graph is not configured)."""
    directory: GraphDirectory | None
    installer: GraphAppInstaller | None


def graph_access(settings: Settings) -> GraphAccess:
    config = GraphConfig.from_settings(settings)
    if config is None:
        return GraphAccess(None, None, None, None, None)
    tokens = MsalGraphTokens(config)
    client = GraphClient(config, tokens)
    installer = (
        GraphAppInstaller(client, settings.teams_catalog_app_id, graph_base_url=config.base_url)
        if settings.teams_catalog_app_id
        else None
    )
    return GraphAccess(config, tokens, client, GraphDirectory(client, config.tenant_id), installer)
