"""Which mobile push services this instance runs, from its settings.

FCM runs with a Firebase service account, APNs with a .p8 key (a bad key file stops start-up
here). Either way there is one channel `mobile`: with both on, each device is sent by one of
them (delivery/mobile.py `MobilePush`). Devices nothing here can reach (all of them while both
are off) are counted as skipped with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from delivery.apns import ApnsChannel, ApnsConfig
from delivery.channel import AnyChannel, ChannelRegistry
from delivery.mobile import MobilePush, UnreachableDevices
from storage.devices import DeviceStore
from storage.protocols import InboxStore

__all__ = ["MobileChannels", "mobile_channels"]


@dataclass(frozen=True, slots=True)
class MobileChannels:
    channel: AnyChannel | None
    """Channel `mobile` (None: neither FCM nor APNs is configured)."""
    unreachable: UnreachableDevices
    fcm: bool
    apns: bool

    def register(self, channels: ChannelRegistry) -> None:
        if self.channel is not None:
            channels.register(self.channel)
        channels.register_unreachable(self.unreachable)


def mobile_channels(settings: Settings, devices: DeviceStore, inbox: InboxStore) -> MobileChannels:
    """Pushes carry the person's unread count (from `inbox`) as their badge."""
    apns_config = ApnsConfig.from_settings(settings)
    apns = ApnsChannel(devices, inbox, apns_config) if apns_config is not None else None
    fcm = None
    if settings.firebase_credentials is not None:
        from delivery.fcm import FcmChannel  # firebase-admin is imported only when configured

        fcm = FcmChannel(
            devices, settings.firebase_credentials, settings.fcm_endpoint,
            unread_counts=inbox.unread_counts,
        )
    channel: AnyChannel | None = (
        MobilePush(devices, fcm, apns, prefer=settings.mobile_prefer)
        if fcm is not None and apns is not None
        else fcm or apns
    )
    return MobileChannels(
        channel,
        UnreachableDevices(
            devices, fcm_configured=fcm is not None, apns_configured=apns is not None
        ),
        fcm=fcm is not None,
        apns=apns is not None,
    )
