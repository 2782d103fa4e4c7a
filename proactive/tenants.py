"""Where each Teams tenant's Bot Connector lives: the serviceUrl Herald creates chats through.

Teams gives every activity a `serviceUrl` (a regional `https://smba.trafficmanager.net/...`);
a conversation Herald creates itself (delivery/reach.py) has no activity yet, so it uses the
URL learnt from the last activity of the same tenant, kept in the bot's state store (any
backend), or, for a tenant that has never written, the configured one
(`HERALD_TEAMS_SERVICE_URL`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from botbuilder.core import Storage

__all__ = ["TenantServiceUrls"]

_KEY: Final = "herald/tenant-service-url/{tenant}"
_CACHED: Final = 10_000


class TenantServiceUrls:
    """Each tenant's serviceUrl: learnt from activities, remembered in `storage`."""

    def __init__(self, storage: Storage, *, default: str = "") -> None:
        self._storage = storage
        self._default = default
        self._known: OrderedDict[str, str] = OrderedDict()

    def _remember(self, tenant_id: str, service_url: str) -> None:
        self._known[tenant_id] = service_url
        self._known.move_to_end(tenant_id)
        if len(self._known) > _CACHED:
            self._known.popitem(last=False)

    async def learn(self, tenant_id: str, service_url: str) -> None:
        """An activity of `tenant_id` came from `service_url` (written only when it changed)."""
        if not tenant_id or not service_url or self._known.get(tenant_id) == service_url:
            return
        await self._storage.write(
            {_KEY.format(tenant=tenant_id): {"serviceUrl": service_url, "e_tag": "*"}}
        )
        self._remember(tenant_id, service_url)

    async def service_url(self, tenant_id: str) -> str | None:
        """The tenant's serviceUrl; the configured default for a tenant never heard from
        (None when there is none)."""
        known = self._known.get(tenant_id)
        if known is not None:
            return known
        key = _KEY.format(tenant=tenant_id)
        found = (await self._storage.read([key])).get(key)
        url = found.get("serviceUrl") if isinstance(found, dict) else None
        if isinstance(url, str) and url:
            self._remember(tenant_id, url)
            return url
        return self._default or None
