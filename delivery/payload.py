"""Fitting a notification into a channel's payload limit: shorten it, never fail the send.

Push services cap what they carry (Web Push: 4,096 encrypted bytes, RFC 8291 §4; FCM: 4,000
bytes of data). A channel states its limit as `max_payload_bytes` and calls `fit_json` with
the order in which fields may give way, e.g.: long text is cut first (with an ellipsis) but
keeps a readable start, optional extras are dropped next, then the text is cut further, and
the title last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["ELLIPSIS", "Shrink", "collapse_id", "encode_json", "fit_json"]

ELLIPSIS = "…"
Shrink = tuple[str, Literal["truncate", "drop"], int]
"""One step: (field, "truncate", keep) cuts a string field to what fits, if that leaves at
least `keep` characters; (field, "drop", 0) leaves the field out."""


def collapse_id(notification_id: str) -> str:
    """The notification id as a collapse key / `apns-collapse-id` / APNs `thread-id` (APNs
    allows 64 bytes): one per notification, so its versions replace each other on the device."""
    if len(notification_id.encode()) <= 64:
        return notification_id
    return hashlib.sha256(notification_id.encode()).hexdigest()


def encode_json(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the form payloads go out in."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _truncated(document: dict[str, Any], field: str, limit: int, keep: int) -> dict[str, Any]:
    """`document` with `field` cut to the longest prefix (plus an ellipsis) that fits.

    With `keep`, only if at least `keep` characters fit; otherwise the field is left whole for
    a later step (drop something else first, then cut further).
    """
    text = str(document[field])
    if len(text) <= keep:
        return document
    shortest = {**document, field: text[:keep].rstrip() + ELLIPSIS if keep else ""}
    if keep and len(encode_json(shortest)) > limit:
        return document
    best, low, high = shortest, keep, len(text) - 1
    while low <= high:
        middle = (low + high) // 2
        candidate = {**document, field: text[:middle].rstrip() + ELLIPSIS}
        if len(encode_json(candidate)) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def fit_json(document: Mapping[str, Any], limit: int, steps: Sequence[Shrink]) -> bytes:
    """`document` as JSON of at most `limit` bytes, shrunk by `steps` in order as needed.

    Raises ValueError only if the document still does not fit once every step is taken (a
    channel's steps cover every field that can be long, so that is a programming error).
    """
    current = dict(document)
    encoded = encode_json(current)
    for field, action, keep in steps:
        if len(encoded) <= limit:
            return encoded
        if current.get(field) is None:
            continue
        if action == "drop":
            current.pop(field)
        else:
            current = _truncated(current, field, limit, keep)
        encoded = encode_json(current)
    if len(encoded) > limit:
        raise ValueError(f"payload of {len(encoded)} bytes cannot be fitted into {limit}")
    return encoded
