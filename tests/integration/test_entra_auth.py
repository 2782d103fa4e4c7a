"""Entra ID access tokens instead of API keys, against the Entra stand-in over TLS.

The stand-in plays the tenant: its OpenID configuration names its JWKS, its token endpoint
issues RS256 v2.0 access tokens for Herald's API to client apps with app roles assigned, and
tests sign tokens of every wrong shape with `EntraStandIn.sign` / `access_token`. Herald reads
the configuration and keys over https, trusting only the test-made certificate.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import HeraldFactory
from tests.harness import ROOT, RunningHerald
from tests.peers.graph import EntraStandIn
from tests.peers.tls import SelfSigned, self_signed

API = "6d3c1f7e-8a51-4d0b-9a47-5f0f4e2c9b10"
"""Herald's API app registration (client id: the audience of its tokens)."""
API_URI = "api://herald.contoso.com"
ROLE = "Notifications.Send"
SENDER = "crm-backend"
SENDER_SECRET = "crm-secret-value"
READER = "reporting-backend"
READER_SECRET = "reporting-secret"
EVENT = {"type": "case.assigned", "title": "Case 4711", "recipients": {"all": True}}


@dataclass
class Tenant:
    tls: SelfSigned
    entra: EntraStandIn

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "HERALD_AUTH_TENANT_ID": self.entra.tenant,
            "HERALD_AUTH_AUDIENCE": f"{API},{API_URI}",
            "HERALD_AUTH_AUTHORITY_HOST": self.entra.url,
            "HERALD_AUTH_CA_FILE": str(self.tls.cert_file),
            **overrides,
        }

    def token(self, roles: tuple[str, ...] = (ROLE,), **claims: object) -> str:
        return self.entra.access_token(SENDER, API, roles, **claims)

    @property
    def jwks_reads(self) -> int:
        return sum(1 for r in self.entra.requests if r.path.endswith("/discovery/v2.0/keys"))


@pytest.fixture
async def tenant(tmp_path: Path) -> AsyncIterator[Tenant]:
    tls = self_signed(tmp_path / "tls")
    async with EntraStandIn(tls) as entra:
        entra.add_api(API, API_URI)
        entra.add_client(SENDER, SENDER_SECRET, {API: (ROLE,)})
        entra.add_client(READER, READER_SECRET, {API: ("Reports.Read",)})
        yield Tenant(tls, entra)


@pytest.fixture
async def herald(herald_factory: HeraldFactory, tenant: Tenant) -> RunningHerald:
    return await herald_factory(**tenant.env())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(herald: RunningHerald, token: str) -> tuple[int, object, dict[str, str]]:
    assert herald.http is not None
    async with herald.http.post(
        f"{herald.url}/api/notifications", json=EVENT, headers=bearer(token)
    ) as response:
        return response.status, await response.json(), dict(response.headers)


async def test_a_token_with_the_role_is_as_good_as_an_api_key(
    herald: RunningHerald, tenant: Tenant
) -> None:
    token = tenant.token()
    status, body, _ = await post(herald, token)
    assert status == 202, body
    assert isinstance(body, dict)
    code, status_body = await herald.request(
        "GET", f"/api/notifications/{body['id']}", headers=bearer(token)
    )
    assert code == 200 and status_body["id"] == body["id"]
    # Self-authenticated endpoints take it too (as a backend: any user's devices).
    code, devices = await herald.request(
        "GET", "/api/devices?userId=emulator:someone", headers=bearer(token)
    )
    assert (code, devices["items"]) == (200, [])
    # The configuration and the keys were read once; later tokens are checked from the cache.
    assert tenant.jwks_reads == 1
    assert (await post(herald, tenant.token()))[0] == 202
    assert tenant.jwks_reads == 1


async def test_the_api_id_uri_is_an_accepted_audience_too(
    herald: RunningHerald, tenant: Tenant
) -> None:
    assert (await post(herald, tenant.token(aud=API_URI)))[0] == 202


async def test_a_valid_token_without_the_role_is_403(herald: RunningHerald, tenant: Tenant) -> None:
    for token in (
        tenant.entra.access_token(READER, API, ("Reports.Read",)),
        tenant.token(roles=()),
        tenant.token(roles=(), scp=ROLE),  # a delegated scope is not the app role
    ):
        status, body, headers = await post(herald, token)
        assert status == 403, body
        assert isinstance(body, dict) and body["error"]["code"] == "forbidden"
        assert "Notifications.Send" in body["error"]["message"]
        assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]


def _wrong_tokens(tenant: Tenant) -> dict[str, str]:
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"aud": API, "iss": tenant.entra.issuer, "exp": now + 600, "roles": [ROLE]}
    return {
        "expired": tenant.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not valid yet": tenant.token(nbf=now + 3600, iat=now),
        "another audience": tenant.token(aud="api://someone-else"),
        "another issuer": tenant.token(iss=f"{tenant.entra.url}/another-tenant/v2.0"),
        "a v1.0 token": tenant.token(iss=f"https://sts.windows.net/{tenant.entra.tenant}/"),
        "forged signature": tenant.entra.sign(claims, key=other_key),
        "HS256": tenant.entra.sign(claims, algorithm="HS256"),
        "no expiry": tenant.token(exp=None),
        "no kid": tenant.entra.sign(claims, omit_kid=True),
        "alg none": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIiwia2lkIjoieCJ9."
        "eyJhdWQiOiJ4Iiwicm9sZXMiOlsiTm90aWZpY2F0aW9ucy5TZW5kIl19.",
        "garbage": "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    }


async def test_tokens_that_are_not_valid_here_are_401_and_never_logged(
    herald: RunningHerald, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = _wrong_tokens(tenant)
    with caplog.at_level(logging.DEBUG):
        for why, token in wrong.items():
            status, body, headers = await post(herald, token)
            assert status == 401, (why, body)
            assert isinstance(body, dict) and body["error"]["code"] == "unauthorized", why
            assert headers["WWW-Authenticate"].startswith("Bearer "), why
        valid = tenant.token()
        assert (await post(herald, valid))[0] == 202
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for token in [*wrong.values(), valid]:
        assert token not in logged
        signature = token.split(".")[2]
        assert not signature or signature not in logged  # not even its signature
    assert "Entra ID token refused (401): the token has expired" in logged
    # Nothing was accepted: only the valid post created a notification.
    assert "v1.0 token" in (await post(herald, wrong["a v1.0 token"]))[1]["error"]["message"]


async def test_clock_skew_is_tolerated_within_the_setting(
    herald_factory: HeraldFactory, tenant: Tenant
) -> None:
    herald = await herald_factory(**tenant.env(HERALD_AUTH_CLOCK_SKEW_SECONDS="120"))
    now = int(time.time())
    assert (await post(herald, tenant.token(exp=now - 60)))[0] == 202
    assert (await post(herald, tenant.token(nbf=now + 60)))[0] == 202
    assert (await post(herald, tenant.token(exp=now - 180)))[0] == 401
    assert (await post(herald, tenant.token(nbf=now + 180)))[0] == 401


async def test_rolled_over_keys_are_read_again_at_most_once_per_cooldown(
    herald: RunningHerald, tenant: Tenant
) -> None:
    assert (await post(herald, tenant.token()))[0] == 202
    assert tenant.jwks_reads == 1
    # Entra ID rolls its keys over: the new kid is unknown, so the JWKS is read again.
    tenant.entra.rotate_keys(keep_old=False)
    assert (await post(herald, tenant.token()))[0] == 202
    assert tenant.jwks_reads == 2
    # Made-up key ids do not make Herald read the keys again and again.
    for n in range(3):
        forged = tenant.entra.sign(
            {"aud": API, "iss": tenant.entra.issuer, "exp": int(time.time()) + 60},
            kid=f"made-up-{n}",
        )
        status, body, _ = await post(herald, forged)
        assert status == 401 and "key the tenant does not publish" in body["error"]["message"]
    assert tenant.jwks_reads == 2
    assert (await post(herald, tenant.token()))[0] == 202


async def test_an_unreachable_tenant_is_503_not_401(
    herald_factory: HeraldFactory, tenant: Tenant
) -> None:
    # A port on loopback where nothing listens: the keys cannot be read.
    herald = await herald_factory(**tenant.env(HERALD_AUTH_AUTHORITY_HOST="https://127.0.0.1:9"))
    status, body, headers = await post(herald, tenant.token())
    assert status == 503, body
    assert body["error"]["code"] == "identity_provider_unavailable"
    assert headers["Retry-After"] == "5"
    # API keys work regardless.
    code, _ = await herald.post_event(EVENT)
    assert code == 202


async def test_without_the_settings_tokens_are_just_wrong_keys(
    herald_factory: HeraldFactory, tenant: Tenant
) -> None:
    herald = await herald_factory()
    assert (await post(herald, tenant.token()))[0] == 401
    assert tenant.entra.requests == []  # nothing was asked of any tenant


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.notify", *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_posts_with_a_token_from_client_credentials(
    herald: RunningHerald, tenant: Tenant
) -> None:
    env = {
        "HERALD_TENANT_ID": tenant.entra.tenant,
        "HERALD_CLIENT_ID": SENDER,
        "HERALD_CLIENT_SECRET": SENDER_SECRET,
        "HERALD_AUTHORITY_HOST": tenant.entra.url,
        "HERALD_CA_FILE": str(tenant.tls.cert_file),
    }
    code, out, err = await run_cli(
        "--url", herald.url, "--scope", API_URI, "--id", "entra-1", "--type", "t",
        "--title", "From the CLI", "--all", "--page-link",
        env=env,
    )
    assert code == 0, err
    assert out.startswith("entra-1  created")
    assert "page: http://localhost:3978/notifications/entra-1?token=" in out
    [token_request] = tenant.entra.token_requests
    assert token_request.body["scope"] == f"{API_URI}/.default"
    assert token_request.body["client_secret"] == "***"
    assert (await herald.status("entra-1"))["title"] == "From the CLI"

    # A secret Entra ID refuses: exit 2 with its reason, nothing posted, the secret not shown.
    code, out, err = await run_cli(
        "--url", herald.url, "--scope", API_URI, "--title", "x", "--type", "t", "--all",
        env={**env, "HERALD_CLIENT_SECRET": "wrong-secret"},
    )
    assert code == 2 and "invalid_client" in err and "wrong-secret" not in err
    # A client without the role gets its token, and Herald's 403.
    code, out, err = await run_cli(
        "--url", herald.url, "--scope", API_URI, "--title", "x", "--type", "t", "--all",
        env={**env, "HERALD_CLIENT_ID": READER, "HERALD_CLIENT_SECRET": READER_SECRET},
    )
    assert code == 2 and "403" in err and "Notifications.Send" in err
