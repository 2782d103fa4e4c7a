"""Registered devices this Herald cannot push to, so they are counted instead of dropped.

The router plans deliveries for the targets of registered channels only. Two kinds of device
would fall through that net and leave their owner reported as `no-target`:

- iOS installations registered with only an APNs device token: Herald sends through FCM and has
  no direct APNs client, so they are skipped as `apns-not-configured` (also when FCM is on);
- every device while mobile push is off (no FIREBASE_CREDENTIALS): `fcm-not-configured` (and
  `apns-not-configured` for the APNs-only ones).

`UnreachableDevices` lists them per user for the router (`ChannelRegistry.register_unreachable`),
which records one skipped delivery per device with that reason, under channel `mobile`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from storage.devices import DeviceStore

__all__ = ["APNS_NOT_CONFIGURED", "FCM_NOT_CONFIGURED", "MOBILE", "UnreachableDevices"]

MOBILE: Final = "mobile"
"""The channel name devices belong to (preferences call it `mobile`)."""
APNS_NOT_CONFIGURED: Final = "apns-not-configured"
FCM_NOT_CONFIGURED: Final = "fcm-not-configured"


class UnreachableDevices:
    """Devices of channel `mobile` that nothing on this instance can deliver to, with why."""

    name = MOBILE

    def __init__(self, devices: DeviceStore, *, fcm_configured: bool) -> None:
        self._devices = devices
        self._fcm = fcm_configured

    async def unreachable(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        result: dict[str, list[tuple[str, str]]] = {}
        if not self._fcm:
            for user_id, targets in (await self._devices.targets_for(user_ids)).items():
                result[user_id] = [(target, FCM_NOT_CONFIGURED) for target in targets]
        for user_id, targets in (await self._devices.apns_only_for(user_ids)).items():
            result.setdefault(user_id, []).extend(
                (target, APNS_NOT_CONFIGURED) for target in targets
            )
        return result
