"""Adaptive Card builders: how a notification looks in Teams, Web Chat and the Emulator."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    SuggestedActions,
)

from notifications.event import Notice

__all__ = [
    "ACKNOWLEDGE",
    "ADAPTIVE_CARD",
    "MARK_READ",
    "PROMPT_ANSWER",
    "CardState",
    "card_markdown",
    "notification_activity",
    "notification_card",
    "plain_text",
    "prompt_card",
    "prompt_of",
]

ADAPTIVE_CARD: Final = "application/vnd.microsoft.card.adaptive"
_CARD_VERSION: Final = "1.4"
PROMPT_ANSWER: Final = "promptAnswer"
"""The `action` of a prompt's answer buttons (data: notificationId, choice)."""
ACKNOWLEDGE: Final = "acknowledge"
"""The `action` of the acknowledge button an event's `acknowledge` asks for (data:
notificationId)."""
MARK_READ: Final = "markRead"
"""The `action` of a default card's *Mark read* button (data: notificationId)."""


@dataclass(frozen=True, slots=True)
class CardState:
    """One person's state of a notification, shown on the card sent to them: a card updated
    in place after they acknowledged (or marked it read) shows that instead of the button."""

    read: bool = False
    acknowledged_at: float | None = None


def _acknowledge_text(event: Notice) -> str | None:
    return event.acknowledge.text if event.acknowledge and event.acknowledge.text else None


def _engagement(
    event: Notice, state: CardState | None, *, mark_read: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a card shows of the person's engagement: (body blocks, buttons).

    With an `acknowledge` request: its button until they acknowledge, then "Acknowledged"
    with the time. Otherwise (on Herald's own card) a *Mark read* button until it is read.
    Buttons need the notification's id (they name it)."""
    notification_id = event.id
    if not notification_id:
        return [], []
    text = _acknowledge_text(event)
    if text is not None:
        if state is not None and state.acknowledged_at is not None:
            when = datetime.fromtimestamp(state.acknowledged_at, UTC).strftime("%d %b %H:%M UTC")
            return [
                {
                    "type": "TextBlock",
                    "text": f"✅ Acknowledged · {when}",
                    "color": "Good",
                    "weight": "Bolder",
                    "wrap": True,
                    "spacing": "Medium",
                }
            ], []
        return [], [
            {
                "type": "Action.Submit",
                "title": text,
                "style": "positive",
                "data": {"action": ACKNOWLEDGE, "notificationId": notification_id},
            }
        ]
    if not mark_read:
        return [], []
    if state is not None and state.read:
        return [
            {"type": "TextBlock", "text": "✓ Read", "isSubtle": True, "size": "Small",
             "spacing": "Small", "wrap": True}
        ], []
    return [], [
        {
            "type": "Action.Submit",
            "title": "Mark read",
            "data": {"action": MARK_READ, "notificationId": notification_id},
        }
    ]

# Adaptive Card colours and a symbol per severity, so the severity reads without colour too.
_SEVERITY: Final[dict[str, tuple[str, str, str]]] = {
    "info": ("Accent", "ℹ️", "Info"),
    "warning": ("Warning", "⚠️", "Warning"),
    "error": ("Attention", "⛔", "Error"),
}


_LONE_NEWLINE: Final = re.compile(r"(?<!\n)\n(?!\n)")


def card_markdown(text: str) -> str:
    """`text` for a TextBlock: Adaptive Card markdown drops a single line break (only a blank
    line starts a new line), so each lone `\n` becomes a paragraph break, as the sender meant."""
    return _LONE_NEWLINE.sub("\n\n", text.replace("\r\n", "\n"))


def prompt_of(event: Notice) -> tuple[str, list[str]] | None:
    """The event's question and its choices, if it asks one."""
    prompt = event.prompt
    if prompt is None or not prompt.text or not prompt.choices:
        return None
    return prompt.text, list(prompt.choices)


def plain_text(event: Notice) -> str:
    """The notification as one line of text, for clients that render no cards."""
    parts = [event.title]
    if event.text:
        parts.append(event.text)
    if event.url:
        parts.append(event.url)
    prompt = prompt_of(event)
    if prompt is not None:
        parts.append(f"{prompt[0]} ({' / '.join(prompt[1])})")
    return " — ".join(parts)


def _prompt_block(event: Notice) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The question as a TextBlock and one Submit button per choice (when it can be answered:
    the answer is recorded against the notification's id)."""
    prompt = prompt_of(event)
    if prompt is None:
        return None
    text, choices = prompt
    question = {
        "type": "TextBlock",
        "text": card_markdown(text),
        "weight": "Bolder",
        "wrap": True,
        "spacing": "Medium",
    }
    if not event.id:
        return question, []
    buttons = [
        {
            "type": "Action.Submit",
            "title": choice,
            "data": {"action": PROMPT_ANSWER, "notificationId": event.id, "choice": choice},
        }
        for choice in choices
    ]
    return question, buttons


def prompt_card(event: Notice) -> dict[str, Any] | None:
    """The question on a card of its own, sent beside a backend's own card."""
    block = _prompt_block(event)
    if block is None:
        return None
    question, buttons = block
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": _CARD_VERSION,
        "fallbackText": question["text"],
        "body": [question],
    }
    if buttons:
        card["actions"] = buttons
    return card


def acknowledge_card(event: Notice, state: CardState | None = None) -> dict[str, Any] | None:
    """The acknowledge button (or "Acknowledged") on a card of its own, sent beside a
    backend's own card."""
    blocks, buttons = _engagement(event, state, mark_read=False)
    if not blocks and not buttons:
        return None
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": _CARD_VERSION,
        "fallbackText": str(_acknowledge_text(event)),
        "body": blocks
        or [{"type": "TextBlock", "text": "Please confirm:", "isSubtle": True, "wrap": True}],
    }
    if buttons:
        card["actions"] = buttons
    return card


def notification_card(event: Notice, state: CardState | None = None) -> dict[str, Any]:
    """The default card: title (coloured by severity), optional icon, text, an Open action,
    and the person's engagement (acknowledge button, or *Mark read*; see `_engagement`)."""
    color, symbol, label = _SEVERITY.get(event.severity, _SEVERITY["info"])
    title_block: dict[str, Any] = {
        "type": "TextBlock",
        "text": f"{symbol} {event.title}",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
        "color": color,
    }
    header: dict[str, Any]
    if event.icon:
        header = {
            "type": "ColumnSet",
            "columns": [
                {
                    "type": "Column",
                    "width": "auto",
                    "verticalContentAlignment": "Center",
                    "items": [
                        {"type": "Image", "url": event.icon, "size": "Small", "altText": label}
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
    if event.text:
        body.append({"type": "TextBlock", "text": card_markdown(event.text), "wrap": True})
    body.append(
        {
            "type": "TextBlock",
            "text": f"{label} · {event.type}",
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
    actions: list[dict[str, Any]] = []
    block = _prompt_block(event)
    opener = (
        {"type": "Action.OpenUrl", "title": "Open", "url": event.url}
        if event.url
        else None
    )
    # A question's card has no *Mark read* (answering is the person's action there).
    engaged, buttons = _engagement(event, state, mark_read=block is None)
    acks = [b for b in buttons if b["data"]["action"] == ACKNOWLEDGE]
    body.extend(engaged)
    if block is not None:
        # Under the text, not in the row of answers, where they would read as more answers.
        apart = acks + ([opener] if opener is not None else [])
        if apart:
            body.append({"type": "ActionSet", "spacing": "Small", "actions": apart})
        body.append(block[0])
        actions.extend(block[1])
    else:
        actions.extend(acks)
        if opener is not None:
            actions.append(opener)
        actions.extend(b for b in buttons if b["data"]["action"] == MARK_READ)
    if actions:
        card["actions"] = actions
    return card


def notification_activity(event: Notice, state: CardState | None = None) -> Activity:
    """A message carrying the notification card (or the event's own card) and a text summary.

    An event with a `prompt` asks its question on the card (beside a backend's own card, on a
    second one) with a button per choice, and offers the choices as suggested actions for
    clients that show no cards. An event with `acknowledge` gets its button the same way;
    `state` is the person's (a card updated in place after they acknowledged).
    """
    content = event.card or notification_card(event, state)
    attachments = [Attachment(content_type=ADAPTIVE_CARD, content=content)]
    if event.card:
        ack = acknowledge_card(event, state)
        if ack is not None:
            attachments.append(Attachment(content_type=ADAPTIVE_CARD, content=ack))
    activity = Activity(
        type=ActivityTypes.message,
        summary=plain_text(event)[:1000],
        attachments=attachments,
    )
    prompt = prompt_of(event)
    if prompt is not None:
        extra = prompt_card(event) if event.card else None
        if extra is not None:
            attachments.append(Attachment(content_type=ADAPTIVE_CARD, content=extra))
        if event.id:
            activity.suggested_actions = SuggestedActions(
                actions=[
                    CardAction(type=ActionTypes.im_back, title=c, value=c) for c in prompt[1]
                ]
            )
    return activity
