"""One reading of `Retry-After` for every peer Herald talks to (RFC 9110 §10.2.3).

The Bot Connector, Microsoft Graph, FCM and the Web Push services all answer throttling with
this header, as delay-seconds or as an HTTP-date. Each client once had its own parser with its
own rules (one ignored dates, one accepted non-ASCII digits); a single one means a peer's answer
is honoured the same way whichever channel meets it.
"""

from __future__ import annotations

import math
import re
import time
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["retry_after_seconds"]

_SECONDS: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
"""Delay-seconds (whole, or with a fraction as test stand-ins send); a negative value means
"now" rather than garbage."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from now, never negative; None when absent or unreadable (the caller
    then uses its own backoff)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # "-0000": a date with no known zone cannot be compared with now
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
