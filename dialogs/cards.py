"""Adaptive Card builders: how a notification looks in Teams, Web Chat and the Emulator."""

from __future__ import annotations

from typing import Any, Final

from botbuilder.schema import Activity, ActivityTypes, Attachment

__all__ = ["ADAPTIVE_CARD", "notification_activity", "notification_card", "plain_text"]

ADAPTIVE_CARD: Final = "application/vnd.microsoft.card.adaptive"
_CARD_VERSION: Final = "1.4"

# Adaptive Card colours and a symbol per severity, so the severity reads without colour too.
_SEVERITY: Final[dict[str, tuple[str, str, str]]] = {
    "info": ("Accent", "ℹ️", "Info"),
    "warning": ("Warning", "⚠️", "Warning"),
    "error": ("Attention", "⛔", "Error"),
}


def plain_text(event: dict[str, Any]) -> str:
    """The notification as one line of text, for clients that render no cards."""
    parts = [str(event.get("title", ""))]
    if event.get("text"):
        parts.append(str(event["text"]))
    if event.get("url"):
        parts.append(str(event["url"]))
    return " — ".join(parts)


def notification_card(event: dict[str, Any]) -> dict[str, Any]:
    """The default card: title (coloured by severity), optional icon, text, and an Open action."""
    color, symbol, label = _SEVERITY.get(str(event.get("severity", "info")), _SEVERITY["info"])
    title_block: dict[str, Any] = {
        "type": "TextBlock",
        "text": f"{symbol} {event.get('title', '')}",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
        "color": color,
    }
    header: dict[str, Any]
    if event.get("icon"):
        header = {
            "type": "ColumnSet",
            "columns": [
                {
                    "type": "Column",
                    "width": "auto",
                    "verticalContentAlignment": "Center",
                    "items": [
                        {"type": "Image", "url": event["icon"], "size": "Small", "altText": label}
                    ],
                },
                {
                    "type": "Column",
                    "width": "stretch",
                    "verticalContentAlignment": "Center",
                    "items": [title_block],
                },
            ],
        }
    else:
        header = title_block
    body: list[dict[str, Any]] = [header]
    if event.get("text"):
        body.append({"type": "TextBlock", "text": event["text"], "wrap": True})
    body.append(
        {
            "type": "TextBlock",
            "text": f"{label} · {event.get('type', '')}",
            "isSubtle": True,
            "size": "Small",
            "spacing": "Small",
            "wrap": True,
        }
    )
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": _CARD_VERSION,
        "fallbackText": plain_text(event),
        "body": body,
    }
    if event.get("url"):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": event["url"]}]
    return card


def notification_activity(event: dict[str, Any]) -> Activity:
    """A message carrying the notification card (or the event's own card) and a text summary."""
    content = event.get("card") or notification_card(event)
    return Activity(
        type=ActivityTypes.message,
        summary=plain_text(event)[:1000],
        attachments=[Attachment(content_type=ADAPTIVE_CARD, content=content)],
    )
