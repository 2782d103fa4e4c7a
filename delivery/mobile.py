"""Mobile push: which service sends to which device, and the devices nothing here can reach.

A device (an app installation) is one delivery target of the preference channel `mobile`,
whatever carries the push: FCM (`delivery/fcm.py`, Android, web and iOS apps that register
the Firebase token) or APNs directly (`delivery/apns.py`, iOS apps that register their APNs
device token). One channel named `mobile` is registered (the registry takes one channel per
name, preferences and the status count by that name):

- FCM only: the FCM channel itself (devices with an FCM token);
- APNs only: the APNs channel itself (devices with an APNs token);
- both: `MobilePush`, which gives each device to one of them when the leased batch is
  loaded: the service whose token it has, and for a device with both tokens the one
  HERALD_MOBILE_PREFER names. A device gets one delivery and one push, never two.

Devices nothing on this instance can deliver to are counted, never dropped or reported as
`no-target` (`UnreachableDevices`, `ChannelRegistry.register_unreachable`): with mobile push
off every device (`fcm-not-configured`, or `apns-not-configured` for those with only an APNs
token); with FCM only, the devices with only an APNs token (`apns-not-configured`); with APNs
only, those with only an FCM token (`fcm-not-configured`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from delivery.channel import Channel, DeliveryResult, Pace, Target
from delivery.outbox import DeliveryJob
from storage.devices import DeviceRecord, DeviceStore
from storage.records import NotificationRecord

if TYPE_CHECKING:  # each SDK is imported only when its service is configured
    from delivery.apns import ApnsChannel, ApnsTarget
    from delivery.fcm import FcmChannel

__all__ = [
    "APNS_NOT_CONFIGURED",
    "FCM_NOT_CONFIGURED",
    "MOBILE",
    "MobilePush",
    "Service",
    "UnreachableDevices",
]

MOBILE: Final = "mobile"
"""The channel name devices belong to (preferences call it `mobile`)."""
APNS_NOT_CONFIGURED: Final = "apns-not-configured"
FCM_NOT_CONFIGURED: Final = "fcm-not-configured"

Service = Literal["fcm", "apns"]


class UnreachableDevices:
    """Devices of channel `mobile` that nothing on this instance can deliver to, with why."""

    name = MOBILE

    def __init__(
        self, devices: DeviceStore, *, fcm_configured: bool, apns_configured: bool = False
    ) -> None:
        self._devices = devices
        self._fcm = fcm_configured
        self._apns = apns_configured

    async def unreachable(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        result: dict[str, list[tuple[str, str]]] = {}

        def add(found: dict[str, list[str]], reason: str) -> None:
            for user_id, targets in found.items():
                result.setdefault(user_id, []).extend((target, reason) for target in targets)

        if not self._fcm and not self._apns:
            add(await self._devices.targets_for(user_ids), FCM_NOT_CONFIGURED)
        elif not self._fcm:
            add(await self._devices.fcm_only_for(user_ids), FCM_NOT_CONFIGURED)
        if not self._apns:
            add(await self._devices.apns_only_for(user_ids), APNS_NOT_CONFIGURED)
        return result


@dataclass(frozen=True, slots=True)
class _Unroutable:
    """A loaded device no configured service has a token for any more (it changed since the
    delivery was planned): skipped with the reason, like at planning time."""

    reason: str


MobileTarget: TypeAlias = "DeviceRecord | ApnsTarget | _Unroutable"
"""What channel `mobile` loads for a delivery: the device for FCM, the device and its badge
for APNs, or why neither can take it now."""


class MobilePush(Channel[MobileTarget]):
    """Channel `mobile` with FCM and APNs both on: each device goes to exactly one of them."""

    name = MOBILE

    def __init__(
        self, devices: DeviceStore, fcm: FcmChannel, apns: ApnsChannel, *, prefer: Service
    ) -> None:
        self._devices = devices
        self.fcm = fcm
        self.apns = apns
        self.prefer: Service = prefer

    def route(self, device: DeviceRecord) -> Service:
        """The service that sends to `device` (which has at least one token)."""
        if device.fcm_token and device.apns_token:
            return self.prefer
        return "fcm" if device.fcm_token else "apns"

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        fcm = await self._devices.targets_for(user_ids)
        apns = await self._devices.apns_targets_for(user_ids)
        result: dict[str, list[Target]] = {}
        for user_id in dict.fromkeys([*fcm, *apns]):
            keys = dict.fromkeys([*fcm.get(user_id, ()), *apns.get(user_id, ())])
            result[user_id] = [Target(key) for key in keys]
        return result

    def pace(self, target: MobileTarget) -> Pace | None:
        return None

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, MobileTarget]:
        found = await self._devices.get_many([(job.user_id, job.target) for job in jobs])
        targets: dict[int, MobileTarget] = {}
        to_apns: list[tuple[DeliveryJob, DeviceRecord]] = []
        for job in jobs:
            device = found.get((job.user_id, job.target))
            if device is None or not device.active:
                continue
            if not device.fcm_token and not device.apns_token:
                targets[job.id] = _Unroutable("no-token")
            elif self.route(device) == "fcm":
                targets[job.id] = device
            else:
                to_apns.append((job, device))
        targets.update(await self.apns.targets_of(to_apns))
        return targets

    async def send(
        self, job: DeliveryJob, target: MobileTarget, notification: NotificationRecord
    ) -> DeliveryResult:
        if isinstance(target, _Unroutable):
            return DeliveryResult.skipped(target.reason)
        if isinstance(target, DeviceRecord):
            return await self.fcm.send(job, target, notification)
        return await self.apns.send(job, target, notification)

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        # Only the service that sent the delivery remembers its token.
        await self.fcm.retire(job, reason)
        await self.apns.retire(job, reason)

    async def aclose(self) -> None:
        try:
            await self.apns.aclose()
        finally:
            await self.fcm.aclose()
