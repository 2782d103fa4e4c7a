"""Link tokens as Herald makes them, at another time: for tests of expiry and renewal limits."""

from __future__ import annotations

import time

from api.link_tokens import LinkTokens, load_or_create_secret
from tests.harness import RunningHerald

__all__ = ["renewed_until_now", "signer"]


def signer(herald: RunningHerald, at: float, max_hours: float = 1) -> LinkTokens:
    """Herald's own link tokens (its secret, 15-minute tokens) as made at time `at`."""
    secret = load_or_create_secret("", herald.data_dir)
    return LinkTokens(secret, 15 * 60, max_lifetime_seconds=max_hours * 3600, clock=lambda: at)


def renewed_until_now(
    herald: RunningHerald, token: str, purpose: str, granted: float, max_hours: float = 1
) -> str:
    """`token` as a page open since `granted` holds it: renewed every ten minutes."""
    at = granted + 600
    while at < time.time():
        token = signer(herald, at, max_hours).renew(token, purpose)
        at += 600
    return token
