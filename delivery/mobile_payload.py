"""What a native push carries on both mobile services, FCM and APNs, fitted to their limit.

The two services carry the same content (the alert's title and the event's text, the event's
icon as the image, the click link, the event's `data` as string values beside Herald's own
`herald.*` keys), so that one app handles a push whichever way it came, and both cap a push at
4,096 bytes. This module builds that shared part once and gives way in the same order on both:
the text is cut first (keeping a readable start), then the event's data and the image go, then
the rest of the text, the link, and the title last; a push is never refused for its size.

Each channel keeps only what differs: which data keys its service reserves, and the envelope
around the content (FCM's message with its per-platform options, the APNs `aps` dictionary),
which it builds from the `Fitted` content and measures as the service would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from delivery.payload import Shrink, fit_json
from notifications.event import Notice

__all__ = ["ACKNOWLEDGE_CATEGORY", "SHRINK", "Fitted", "custom_keys", "event_data", "fit_push"]

_Built = TypeVar("_Built")

SHRINK: Final[tuple[Shrink, ...]] = (
    ("body", "truncate", 280),
    ("data", "drop", 0),
    ("image", "drop", 0),
    ("body", "truncate", 0),
    ("url", "drop", 0),
    ("title", "truncate", 1),
)
ACKNOWLEDGE_CATEGORY: Final = "HERALD_ACKNOWLEDGE"
"""The iOS category of a notification that asks for an acknowledgement, whichever way it goes
(APNs directly, or FCM's `apns` block): the app registers an action for it that reports to
POST /api/notifications/{id}/acknowledge."""
_ATTEMPTS: Final = 4
"""Rounds of fitting: each takes the envelope's size, as measured, off the fields' budget."""


@dataclass(frozen=True, slots=True)
class Fitted:
    """The event's content as it fits: None (or no data) for what had to go. Values are kept as
    the event has them (an empty text stays empty), so each envelope decides what to leave out."""

    title: str
    body: str | None
    image: str | None
    url: str | None
    data: dict[str, str]


def _data_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def event_data(data: Mapping[str, Any] | None, reserved: Callable[[str], bool]) -> dict[str, str]:
    """The event's `data` as custom keys: string values (others as compact JSON); nulls,
    Herald's own `herald.*` keys (a sender cannot spoof them) and the keys the service keeps for
    itself (`reserved`) are left out."""
    return {
        key: _data_value(value)
        for key, value in (data or {}).items()
        if value is not None and not key.startswith("herald.") and not reserved(key)
    }


def custom_keys(
    fitted: Fitted, event: Notice, notification_id: str, version: int, *, image: bool = False
) -> dict[str, str]:
    """The event's data and Herald's keys beside it, as the app reads them on either path;
    `herald.image` only where the image is not otherwise carried (APNs)."""
    keys = dict(fitted.data)
    keys.update(
        {
            "herald.id": notification_id,
            "herald.version": str(version),
            "herald.type": event.type,
            "herald.severity": event.severity,
        }
    )
    if fitted.url:
        keys["herald.url"] = fitted.url
    if image and fitted.image:
        keys["herald.image"] = fitted.image
    if event.acknowledge is not None and event.acknowledge.text:
        # The app shows it as an action and reports the acknowledgement with its link token.
        keys["herald.acknowledge"] = event.acknowledge.text
    return keys


def fit_push(
    event: Notice,
    limit: int,
    assemble: Callable[[Fitted], tuple[_Built, int]],
    *,
    reserved: Callable[[str], bool],
    name: str = "push",
) -> _Built:
    """The push `assemble` builds around the event's content, within `limit` bytes.

    `assemble` returns the push and its size as the service counts it. The content is first
    fitted into the whole limit; what the envelope adds is then taken off and the content fitted
    again (the envelope's size hardly depends on the content, so a round or two do). Raises
    ValueError if it cannot fit (naming the push `name`), or if `assemble` does (content the
    service would refuse).
    """
    fields: dict[str, Any] = {
        "title": event.title,
        "body": event.text,
        "image": event.icon,
        "url": event.url,
        "data": event_data(event.data, reserved) or None,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    budget = limit
    for _ in range(_ATTEMPTS):
        shrunk = json.loads(fit_json(fields, budget, SHRINK))
        fitted = Fitted(
            title=shrunk["title"],
            body=shrunk.get("body"),
            image=shrunk.get("image"),
            url=shrunk.get("url"),
            data=shrunk.get("data") or {},
        )
        built, size = assemble(fitted)
        if size <= limit:
            return built
        budget -= size - limit  # the envelope around the fitted fields takes the rest
        if budget <= 0:
            break
    raise ValueError(f"the {name} cannot be fitted into {limit} bytes")
