"""Link tokens: one user, one purpose, short-lived, unforgeable."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from api.link_tokens import LinkTokenError, LinkTokens, load_or_create_secret

SECRET = b"0123456789abcdef0123456789abcdef"


def _claims(**changes: object) -> str:
    claims = {"sub": "u", "pur": "webpush", "exp": 1900, "grant": 1000, "n": "x", **changes}
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


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
        (lambda tok: tok.split(".")[0] + "." + _claims(sub="grace") + "." + tok.split(".")[2],
         "bad signature"),  # another user's claims under Ada's signature
        (lambda tok: "x" + tok, "malformed"),
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


def test_renewal_keeps_the_original_grant_and_ends_at_the_absolute_lifetime() -> None:
    # Issue 11 (4): a page renewed its token indefinitely, so one leaked token was lasting
    # access. A renewal now carries the first grant's time and never reaches past
    # grant + max lifetime.
    now = [1000.0]
    t = LinkTokens(SECRET, 900, max_lifetime_seconds=3600, clock=lambda: now[0])
    token = t.issue("ada", "inbox")
    first = t.verify_claims(token, "inbox")
    assert (first.granted_at, first.expires_at) == (1000, 1900)
    for _ in range(5):  # a page renewing every 10 minutes
        now[0] += 600
        token = t.renew(token, "inbox")
        claims = t.verify_claims(token, "inbox")
        assert claims.granted_at == 1000 and claims.user_id == "ada"
        assert claims.expires_at == min(int(now[0]) + 900, 1000 + 3600)
    assert t.verify_claims(token, "inbox").expires_at == 4600  # capped: no longer extends
    now[0] = 4600
    with pytest.raises(LinkTokenError, match="expired"):
        t.renew(token, "inbox")


def test_a_lower_lifetime_setting_ends_tokens_granted_before_it() -> None:
    now = [1000.0]
    long = LinkTokens(SECRET, 6 * 3600, max_lifetime_seconds=24 * 3600, clock=lambda: now[0])
    token = long.issue("ada", "inbox")
    now[0] += 2 * 3600
    short = LinkTokens(SECRET, 900, max_lifetime_seconds=3600, clock=lambda: now[0])
    with pytest.raises(LinkTokenError, match="expired"):
        short.verify(token, "inbox")


def test_renewal_is_for_the_same_purpose_only() -> None:
    t = tokens([1000.0])
    with pytest.raises(LinkTokenError, match="wrong purpose"):
        t.renew(t.issue("ada", "webpush"), "inbox")
    with pytest.raises(LinkTokenError, match="bad signature"):
        t.renew(t.issue("ada", "inbox")[:-2] + "AA", "inbox")


def test_a_link_is_told_from_an_entra_id_token_without_verifying_it() -> None:
    # The API's middleware sends JWT-shaped bearers to the Entra ID check; Herald's own links
    # (HS256) must not go there, or a page's link would be refused when Entra ID is configured.
    link = tokens([1000.0]).issue("u", "inbox")
    entra_like = _segment({"alg": "RS256", "kid": "k", "typ": "JWT"}) + "." + _claims() + ".sig"
    assert LinkTokens.looks_like_link(link)
    assert not LinkTokens.looks_like_link(entra_like)
    assert not LinkTokens.looks_like_link("hk_an-api-key")
    assert not LinkTokens.looks_like_link("eyJ.eyJ.x")


def _segment(document: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
