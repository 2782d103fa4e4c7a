"""web-push-testing (npm) as a real push service on 127.0.0.1, and a client for its API.

It plays the browser's push service: `subscribe()` gives a subscription (endpoint + keys) for
an application server key, just as `pushManager.subscribe()` would; pushes Herald sends there
are checked (VAPID JWT against that key, aes128gcm) and *decrypted*, and `notifications()`
reads them back. `expire()` makes later pushes get 410. The start script
(tests/peers/node/web-push-testing.js) adds test-only calls: the headers each push arrived with,
injected failures (429/5xx with Retry-After) and counters.

The npm packages are installed by `make test` (`npm ci` in tests/peers/node); without them the
fixture fails with the command to run, it never skips.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from tests.peers.node_peer import NodePeer


@dataclass(frozen=True)
class BrowserSubscription:
    """What a browser's PushSubscription.toJSON() gives, plus web-push-testing's handle."""

    endpoint: str
    p256dh: str
    auth: str
    client_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }


class WebPushTestingServer(NodePeer):
    """The node process (one per test session); `url` is its base URL once started."""

    def __init__(self) -> None:
        super().__init__("web-push-testing.js", "web-push-testing")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else ""


class WebPushTesting:
    """A client of a running web-push-testing; an async context manager (its HTTP session)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebPushTesting:
        self._http = aiohttp.ClientSession(trust_env=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._http is not None
        async with self._http.post(self.url + path, json=body or {}) as response:
            text = await response.text()
            if response.status != 200:
                raise AssertionError(f"web-push-testing {path}: {response.status} {text}")
            return json.loads(text)["data"] if text and text != "OK" else None

    async def subscribe(self, application_server_key: str) -> BrowserSubscription:
        """A new subscription bound to `application_server_key` (VAPID public key, base64url)."""
        data = await self._post(
            "/subscribe",
            # The string "true": web-push-testing checks for it (PEERS.md).
            {"applicationServerKey": application_server_key, "userVisibleOnly": "true"},
        )
        return BrowserSubscription(
            endpoint=data["endpoint"],
            p256dh=data["keys"]["p256dh"],
            auth=data["keys"]["auth"],
            client_hash=data["clientHash"],
        )

    async def notifications(self, subscription: BrowserSubscription) -> list[str]:
        """The decrypted payloads received for the subscription, oldest first."""
        data = await self._post("/get-notifications", {"clientHash": subscription.client_hash})
        return list(data["messages"])

    async def wait_notifications(
        self, subscription: BrowserSubscription, count: int, timeout: float = 10.0
    ) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            messages = await self.notifications(subscription)
            if len(messages) >= count:
                return messages
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(messages)} of {count} pushes arrived: {messages}")
            await asyncio.sleep(0.02)

    async def expire(self, subscription: BrowserSubscription) -> None:
        """From now on pushes to this subscription get 410 Gone."""
        await self._post(f"/expire-subscription/{subscription.client_hash}")

    async def requests(self, subscription: BrowserSubscription) -> list[dict[str, Any]]:
        """The headers every push to this subscription arrived with (successful or not)."""
        data = await self._post("/test/requests", {"clientHash": subscription.client_hash})
        return list(data)

    async def fail(
        self,
        subscription: BrowserSubscription,
        status: int,
        times: int,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next `times` pushes to this subscription with `status`."""
        await self._post(
            "/test/fail",
            {
                "clientHash": subscription.client_hash,
                "status": status,
                "times": times,
                "retryAfter": retry_after,
            },
        )

    async def stats(self) -> dict[str, Any]:
        """Pushes received and delivered (decrypted, 201) since start, and when the last one
        was delivered (epoch milliseconds)."""
        assert self._http is not None
        async with self._http.get(self.url + "/test/stats") as response:
            return dict((await response.json())["data"])
