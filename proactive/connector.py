"""A lean client for the Bot Connector REST calls Herald makes (send, reply, update, delete).

botbuilder's msrest ConnectorClient costs milliseconds per activity (PEERS.md); this client
posts the same JSON to the same URLs over one shared aiohttp session, with a cached bearer
token, and translates the service's answers into Herald's error tree in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urljoin

from yarl import URL

from errors import DeliveryFailed, RetryLater, TargetGone
from outbound.errors import TransportError
from outbound.http import LeanHttpClient
from proactive.service_url import ServiceUrlPolicy, UnsafeServiceUrl
from retry_after import retry_after_seconds

__all__ = [
    "BOT_FRAMEWORK_SCOPE",
    "ConnectorTransport",
    "HttpConnectorTransport",
    "MsalTokenProvider",
    "NoTokens",
    "TokenProvider",
]

log = logging.getLogger(__name__)

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"

# Answers that mean "not now" rather than "never" (Teams documents 412 for concurrent
# operations, 429 for throttling, 502-504 for transient gateway errors).
_TRANSIENT = frozenset({408, 412, 429, 500, 502, 503, 504})
_GONE = frozenset({403, 404})


class TokenProvider(Protocol):
    """Bearer tokens for outgoing calls to the connector; None means send no Authorization."""

    async def token(self) -> str | None: ...

    def invalidate(self) -> None: ...


class NoTokens:
    """Emulator mode (no MicrosoftAppId): the connector expects no Authorization header."""

    async def token(self) -> str | None:
        return None

    def invalidate(self) -> None:
        return None


class MsalTokenProvider:
    """Client-credential tokens from Entra ID via msal, cached until five minutes before expiry.

    msal's HTTP calls are blocking, so acquisition runs in a thread; the cached token is
    returned without leaving the event loop.
    """

    def __init__(self, app_factory: Callable[[], Any], scope: str = BOT_FRAMEWORK_SCOPE) -> None:
        # msal may talk to the authority when an application is built, so it is built on first
        # use, in the same worker thread as the token request, never at start-up.
        self._app_factory = app_factory
        self._app: Any = None
        self._scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._expires_at:
                return self._token
            result = await asyncio.to_thread(self._acquire)
            if "access_token" not in result:
                raise RetryLater(
                    f"could not get a Bot Framework token: {result.get('error', 'unknown')}"
                )
            self._token = str(result["access_token"])
            self._expires_at = time.monotonic() + float(result.get("expires_in", 3600)) - 300
            return self._token

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._app_factory()
        result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self._scope])
        return result

    def invalidate(self) -> None:
        self._token = None


def _error_code(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error") or {}
        return str(error.get("code") or error.get("message") or "")[:200]
    except (ValueError, AttributeError):
        return ""


class ConnectorTransport(Protocol):
    """The connector REST calls; activity bodies arrive encoded (proactive/encoding.py)."""

    async def send(
        self,
        service_url: str,
        conversation_id: str,
        body: bytes,
        reply_to_id: str | None = None,
    ) -> str | None: ...

    async def update(
        self, service_url: str, conversation_id: str, activity_id: str, body: bytes
    ) -> str | None: ...

    async def delete(self, service_url: str, conversation_id: str, activity_id: str) -> None: ...


class HttpConnectorTransport:
    """ConnectorTransport over aiohttp, URL-compatible with botframework-connector's client.

    Every call's serviceUrl is checked against `service_urls` first (proactive/service_url.py):
    a stored reference is only as safe as the activity it came from, and Herald may have
    stored it before the rules were what they are now.
    """

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        service_urls: ServiceUrlPolicy | None = None,
        timeout: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        self._tokens = tokens
        self._service_urls = service_urls or ServiceUrlPolicy()
        self._timeout = timeout
        self._max_connections = max_connections
        self._client: LeanHttpClient | None = None

    async def open(self) -> None:
        if self._client is None:
            self._client = LeanHttpClient(max_connections_per_origin=self._max_connections)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def url(service_url: str, conversation_id: str, activity_id: str | None = None) -> URL:
        """The same URL msrest builds: path parameters quoted with safe=''."""
        path = f"v3/conversations/{quote(conversation_id, safe='')}/activities"
        if activity_id is not None:
            path += f"/{quote(activity_id, safe='')}"
        base = service_url.rstrip("/") + "/"
        # urljoin (what msrest uses) equals plain concatenation unless the base carries a query
        # or fragment; concatenation is several times cheaper on the hot path.
        joined = urljoin(base, path) if "?" in base or "#" in base else base + path
        return URL(joined, encoded=True)

    async def send(
        self,
        service_url: str,
        conversation_id: str,
        body: bytes,
        reply_to_id: str | None = None,
    ) -> str | None:
        url = self._url(service_url, conversation_id, reply_to_id)
        # The SDK names the conversation in a header on replies only; so do we.
        extra = {"x-ms-conversation-id": conversation_id} if reply_to_id is not None else {}
        return await self._call("POST", url, body, extra)

    async def update(
        self, service_url: str, conversation_id: str, activity_id: str, body: bytes
    ) -> str | None:
        url = self._url(service_url, conversation_id, activity_id)
        return await self._call("PUT", url, body)

    async def delete(self, service_url: str, conversation_id: str, activity_id: str) -> None:
        await self._call("DELETE", self._url(service_url, conversation_id, activity_id), None)

    async def create_conversation(
        self, service_url: str, parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`POST /v3/conversations` (ConversationParameters): the ConversationResourceResponse
        (`id`, sometimes `serviceUrl` and `activityId`). TargetGone when the service will not
        open it (Teams: the app is not installed for the member), like a send."""
        url = self._checked_url(service_url, "v3/conversations")
        body = json.dumps(parameters, separators=(",", ":")).encode()
        answer = await self._exchange("POST", url, body)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise RetryLater("the connector created a conversation without an id")
        return answer

    async def get_json(
        self, service_url: str, path: str, query: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A GET of the connector's REST API (a team's roster: `v3/conversations/{id}/
        pagedmembers`); `path` is relative and already quoted."""
        url = self._checked_url(service_url, path)
        if query:
            url = url.update_query(query)
        answer = await self._exchange("GET", url, None)
        if not isinstance(answer, dict):
            raise RetryLater("the connector answered without a JSON object")
        return answer

    def _checked_url(self, service_url: str, path: str) -> URL:
        """`{serviceUrl}/{path}` for a serviceUrl the policy allows."""
        try:
            self._service_urls.check(service_url)
        except UnsafeServiceUrl as exc:
            raise DeliveryFailed(f"refused serviceUrl: {exc}") from None
        return URL(service_url.rstrip("/") + "/" + path, encoded=True)

    def _url(self, service_url: str, conversation_id: str, activity_id: str | None) -> URL:
        """`url()` for a serviceUrl the policy allows; DeliveryFailed for any other (no retry
        can make it acceptable)."""
        try:
            self._service_urls.check(service_url)
        except UnsafeServiceUrl as exc:
            raise DeliveryFailed(f"refused serviceUrl: {exc}") from None
        return self.url(service_url, conversation_id, activity_id)

    async def _call(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        extra_headers: dict[str, str] | None = None,
    ) -> str | None:
        """A send, update or delete: the id the connector answered with, if any."""
        result = await self._exchange(method, url, body, extra_headers)
        return str(result["id"]) if isinstance(result, dict) and result.get("id") else None

    async def _exchange(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        """One call: its JSON answer (None when empty or not JSON), or the error mapped."""
        headers = {"Accept": "application/json", **(extra_headers or {})}
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        token = await self._tokens.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self._client is None:
            raise RetryLater("connector transport is not open")
        try:
            response = await self._client.request(
                method, url, headers, body, timeout=self._timeout
            )
        except TransportError as exc:
            if not exc.retryable:  # a header value that would break the request
                raise DeliveryFailed(exc.reason) from exc
            raise RetryLater(f"connector unreachable: {exc.reason}") from exc
        status, payload = response.status, response.body
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if 200 <= status < 300:
            if not payload:
                return None
            try:
                return json.loads(payload)
            except ValueError:
                return None
        code = _error_code(payload)
        reason = f"{status} {code}".strip()
        if status in _GONE:
            raise TargetGone(reason)
        if status == 401:
            # A token the connector no longer accepts: fetch a fresh one next time.
            self._tokens.invalidate()
            raise RetryLater(reason)
        if status in _TRANSIENT:
            raise RetryLater(reason, after=retry_after)
        raise DeliveryFailed(reason)
