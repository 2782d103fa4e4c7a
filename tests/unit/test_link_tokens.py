"""Link tokens: one user, one purpose, short-lived, unforgeable."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.link_tokens import LinkTokenError, LinkTokens, load_or_create_secret

SECRET = b"0123456789abcdef0123456789abcdef"


def tokens(now: list[float]) -> LinkTokens:
    return LinkTokens(SECRET, 900, clock=lambda: now[0])


def test_round_trip() -> None:
    now = [1000.0]
    t = tokens(now)
    assert t.verify(t.issue("user-1", "webpush"), "webpush") == "user-1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda tok: tok[:-2] + ("A" if tok[-2] != "A" else "B") + tok[-1], "bad signature"),
        (lambda tok: "x" + tok, "bad signature"),
        (lambda tok: tok.replace(".", ""), "malformed"),
        (lambda tok: "", "malformed"),
    ],
)
def test_tampered_tokens_are_refused(mutate: object, reason: str) -> None:
    t = tokens([1000.0])
    with pytest.raises(LinkTokenError) as err:
        t.verify(mutate(t.issue("u", "webpush")), "webpush")  # type: ignore[operator]
    assert err.value.reason == reason


def test_expired_and_wrong_purpose() -> None:
    now = [1000.0]
    t = tokens(now)
    token = t.issue("u", "webpush")
    with pytest.raises(LinkTokenError, match="wrong purpose"):
        t.verify(token, "devices")
    now[0] += 901
    with pytest.raises(LinkTokenError, match="expired"):
        t.verify(token, "webpush")


def test_another_key_cannot_verify() -> None:
    token = tokens([1000.0]).issue("u", "webpush")
    other = LinkTokens(b"another-secret-of-32-bytes-long!", 900, clock=lambda: 1000.0)
    with pytest.raises(LinkTokenError, match="bad signature"):
        other.verify(token, "webpush")


def test_generated_secret_is_kept(tmp_path: Path) -> None:
    first = load_or_create_secret("", tmp_path)
    assert len(first) == 32
    assert load_or_create_secret("", tmp_path) == first
    assert (tmp_path / "link-secret.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret("configured-secret-value", tmp_path) == b"configured-secret-value"
