"""Links the bot offers for channels a person sets up outside the chat (browser push, ...).

A channel that needs something only the person can do (allow notifications in a browser,
sign up a phone) is offered as a link carrying a signed, short-lived token for that one person
(api/link_tokens.py). Builders are registered per channel name in app.py, so the dialogs offer
whatever this Herald has without knowing how a link is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preferences.model import UserPreferences

if TYPE_CHECKING:
    from dialogs.services import DialogServices

__all__ = ["ChannelLink", "LinkMaker", "link_markdown", "links_to_offer"]


@dataclass(frozen=True, slots=True)
class ChannelLink:
    """A link for one person to set up one channel."""

    channel: str
    title: str
    """What the button says, e.g. "Enable browser notifications"."""
    url: str
    minutes: int
    """How long the link works."""
    invitation: str
    """The sentence before the link, e.g. "Open this link in each browser that should ..."."""


LinkMaker = Callable[[str], ChannelLink]
"""Builds a fresh link for a user id."""


def link_markdown(link: ChannelLink) -> str:
    """The link as a sentence for text clients (Teams, Web Chat and the Emulator render it)."""
    return (
        f"{link.invitation} [{link.title}]({link.url}) (the link is only for you and works "
        f"for {link.minutes} minutes)."
    )


async def links_to_offer(
    services: DialogServices,
    user_id: str,
    prefs: UserPreferences,
    channels: Iterable[str] | None = None,
) -> list[ChannelLink]:
    """Links for the channels (of `channels`, or all) that are on in `prefs`, exist on this
    Herald, and do not reach the person anywhere yet."""
    wanted = None if channels is None else set(channels)
    offered: list[ChannelLink] = []
    for name, make in services.channel_links.items():
        if wanted is not None and name not in wanted:
            continue
        channel = services.channels.get(name)
        if channel is None or not prefs.channels.is_enabled(name):
            continue
        if (await channel.targets([user_id])).get(user_id):
            continue
        offered.append(make(user_id))
    return offered
