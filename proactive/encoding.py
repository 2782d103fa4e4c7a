"""Encoding outgoing activities to JSON bytes, with each notification's card encoded once.

Every recipient of a notification gets the same attachments (the card) and a different
address (conversation, recipient, replyToId). The attachments list is shared by the activities
the bot builds for one notification, so its JSON is cached by identity and spliced into each
activity's own small JSON. The result parses to exactly what msrest would send (the wire
compatibility tests compare them); only the position of the "attachments" key differs.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, TypeVar

from botbuilder.schema import Activity

from proactive.codec import dump

__all__ = ["ActivityEncoder", "clone"]

M = TypeVar("M")


def clone(model: M) -> M:
    """A shallow copy of an msrest model: what `copy.copy` returns, several times faster.

    msrest models are plain objects whose state is their `__dict__`, so a new instance with a
    copy of that dict is exactly `copy.copy`'s result without its generic reduce protocol.
    """
    new = object.__new__(type(model))
    new.__dict__.update(model.__dict__)
    return new

_SEPARATORS = (",", ":")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=_SEPARATORS, ensure_ascii=False)


class ActivityEncoder:
    """Activity → UTF-8 JSON bytes; remembers the encoding of the last few attachment lists."""

    def __init__(self, cache_size: int = 64) -> None:
        self._cache: OrderedDict[int, tuple[list[Any], str]] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, activity: Activity) -> bytes:
        attachments = activity.attachments
        if not attachments:
            return _dumps(dump(activity)).encode()
        encoded = self._attachments(attachments)
        rest = clone(activity)
        rest.attachments = None
        head = _dumps(dump(rest))
        joiner = "," if len(head) > 2 else ""
        return f'{head[:-1]}{joiner}"attachments":{encoded}}}'.encode()

    def _attachments(self, attachments: list[Any]) -> str:
        key = id(attachments)
        hit = self._cache.get(key)
        # The identity check guards against a recycled id: the cache holds the list itself.
        if hit is not None and hit[0] is attachments:
            self._cache.move_to_end(key)
            return hit[1]
        encoded = _dumps([dump(a) for a in attachments])
        self._cache[key] = (attachments, encoded)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return encoded
