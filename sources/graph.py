"""Microsoft Graph, app-only: tokens from msal (client credentials) and an httpx client.

Everything Herald says to Graph goes through :class:`GraphClient`, which retries what Graph
asks to be retried (429, 503, 504 and network failures, honouring `Retry-After`) and
translates every other answer into Herald's error tree in one place (`SourceError`,
`SourceNotFound`, `SourceUnavailable`), the way the delivery channels map their SDKs.

msal's HTTP calls are blocking, so token requests run in a worker thread; msal caches the token
and answers from its cache until shortly before it expires. The msal application is built on
first use (building it already talks to the authority), never at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote

import httpx

from errors import SourceError, SourceNotFound, SourceUnavailable
from outbound.errors import map_transport_error
from retry_after import retry_after_seconds

if TYPE_CHECKING:
    from config import Settings

__all__ = [
    "GRAPH_SCOPE",
    "DeltaPage",
    "GraphClient",
    "GraphConfig",
    "GraphTokens",
    "MsalGraphTokens",
]

log = logging.getLogger(__name__)

GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
_RETRIED: Final = frozenset({429, 503, 504})
"""What Graph's throttling guidance says to retry (after Retry-After when given)."""
_EVENT_FIELDS: Final = (
    "id,subject,start,end,isAllDay,isCancelled,location,organizer,webLink,changeKey,"
    "lastModifiedDateTime,type"
)
_UTC: Final = 'outlook.timezone="UTC"'


@dataclass(frozen=True, slots=True)
class GraphConfig:
    """The app registration Herald uses to call Graph, and where Graph and Entra ID live."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    authority_host: str = "https://login.microsoftonline.com"
    base_url: str = "https://graph.microsoft.com/v1.0"
    ca_file: Path | None = None
    """Trust exactly these CAs (and ignore proxy/CA environment variables) for both hosts."""

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphConfig | None:
        """The configuration, or None when the source is off (no app registration set)."""
        if not settings.graph_configured:
            return None
        return cls(
            tenant_id=settings.graph_tenant_id,
            client_id=settings.graph_client_id,
            client_secret=settings.graph_client_secret.get_secret_value(),
            authority_host=settings.graph_authority_host,
            base_url=settings.graph_base_url.rstrip("/"),
            ca_file=settings.graph_ca_file,
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))


class GraphTokens(Protocol):
    """Bearer tokens for Graph."""

    async def token(self) -> str: ...


class MsalGraphTokens:
    """App-only tokens from msal's ConfidentialClientApplication, cached by msal."""

    def __init__(self, config: GraphConfig, *, app_factory: Callable[[], Any] | None = None):
        self._config = config
        self._factory = app_factory or self._build
        self._app: Any = None
        self._lock = asyncio.Lock()

    def _build(self) -> Any:
        import msal
        import requests

        http: Any = None
        if self._config.ca_file is not None:
            # requests lets REQUESTS_CA_BUNDLE override a session's `verify`; with a CA file
            # configured, that file (and nothing from the environment) decides.
            http = requests.Session()
            http.trust_env = False
            http.verify = str(self._config.ca_file)
        return msal.ConfidentialClientApplication(
            self._config.client_id,
            client_credential=self._config.client_secret,
            authority=self._config.authority,
            http_client=http,
            # Never ask Microsoft's public discovery endpoint which authorities exist: the
            # authority is configured, and tests point it at a local stand-in.
            instance_discovery=False,
        )

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._factory()
        result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        return result

    async def token(self) -> str:
        async with self._lock:
            try:
                # msal is synchronous (requests); its cache lookup is cheap, a refresh is not.
                result = await asyncio.to_thread(self._acquire)
            except Exception as exc:  # requests' and msal's own errors: the network or TLS
                raise SourceUnavailable(f"could not reach the token endpoint: {exc!r}") from exc
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        error = str(result.get("error", "unknown_error"))
        description = str(result.get("error_description", "")).splitlines()[0:1]
        raise SourceError(
            f"Entra ID refused a Graph token: {error}: {''.join(description)}".rstrip(": "),
            code=error,
        )


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return str(error.get("code", "")), str(error.get("message", ""))
    except ValueError:
        pass
    return "", response.text[:200]


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """One page of a delta query: changed items, and where to go on."""

    items: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


class GraphClient:
    """The Graph calls Herald makes, over one httpx.AsyncClient."""

    def __init__(
        self,
        config: GraphConfig,
        tokens: GraphTokens,
        *,
        max_attempts: int = 4,
        max_wait: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = config
        self._base = config.base_url.rstrip("/")
        self._tokens = tokens
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._timeout = timeout
        self._sleep = sleep
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self._timeout,
                verify=self._config.ssl_context(),
                trust_env=self._config.ca_file is None,
                headers={"Accept": "application/json"},
                follow_redirects=False,  # DESIGN: outbound requests follow no redirects
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _url(self, path_or_link: str) -> str:
        if path_or_link.startswith(("https://", "http://")):
            # nextLink / deltaLink come from Graph; never follow one elsewhere.
            if not path_or_link.startswith(self._base + "/"):
                raise SourceError(f"refusing to follow a link outside {self._base}")
            return path_or_link
        return f"{self._base}/{path_or_link.lstrip('/')}"

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(8.0, 0.5 * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2))

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One Graph call with retries; the parsed JSON answer (None when empty)."""
        if self._http is None:
            raise SourceUnavailable("the Graph client is not open")
        url = self._url(path)
        label = f"{method} {path.split('?')[0]}"
        for attempt in range(1, self._max_attempts + 1):
            token = await self._tokens.token()
            try:
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", **(headers or {})},
                )
            except httpx.TransportError as exc:
                error = map_transport_error(exc)  # Herald's one reading of transport failures
                if attempt == self._max_attempts or not error.retryable:
                    raise SourceUnavailable(f"{label}: {error.reason}") from exc
                await self._sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status in _RETRIED:
                after = retry_after_seconds(response.headers.get("retry-after"))
                wait = after if after is not None else self._backoff(attempt)
                code, message = _graph_error(response)
                if attempt == self._max_attempts or wait > self._max_wait:
                    raise SourceUnavailable(
                        f"{label}: {status} {code} {message}".strip(),
                        after=after,
                        status=status,
                        code=code,
                    )
                log.info("Graph answered %s %d; retrying in %.1f s", label, status, wait)
                await self._sleep(wait)
                continue
            if status >= 400:
                code, message = _graph_error(response)
                text = f"{label}: {status} {code} {message}".strip()
                if status in (404, 410):
                    raise SourceNotFound(text, status=status, code=code)
                raise SourceError(text, status=status, code=code)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise SourceError(f"{label}: the answer is not JSON", status=status) from exc
        raise SourceUnavailable(f"{label}: no attempts made")  # max_attempts < 1

    # ---- subscriptions

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription this app holds (all pages)."""
        found: list[dict[str, Any]] = []
        link: str | None = "subscriptions"
        while link:
            page = await self.call("GET", link)
            found.extend(item for item in page.get("value", []) if isinstance(item, dict))
            link = page.get("@odata.nextLink")
        return found

    async def get_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.call(
                "GET", f"subscriptions/{quote(subscription_id, safe='')}"
            )
        except SourceNotFound:
            return None
        return found

    async def create_subscription(self, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.call("POST", "subscriptions", json=dict(body))
        return created

    async def renew_subscription(self, subscription_id: str, expiration: str) -> dict[str, Any]:
        renewed: dict[str, Any] = await self.call(
            "PATCH",
            f"subscriptions/{quote(subscription_id, safe='')}",
            json={"expirationDateTime": expiration},
        )
        return renewed

    async def delete_subscription(self, subscription_id: str) -> bool:
        """True if deleted, False if Graph had no such subscription (any more)."""
        try:
            await self.call("DELETE", f"subscriptions/{quote(subscription_id, safe='')}")
        except SourceNotFound:
            return False
        return True

    # ---- calendars

    async def get_event(self, user_id: str, event_id: str) -> dict[str, Any] | None:
        """An event with the fields a notification shows (times in UTC); None if it is gone."""
        try:
            event: dict[str, Any] = await self.call(
                "GET",
                f"users/{quote(user_id, safe='')}/events/{quote(event_id, safe='')}",
                params={"$select": _EVENT_FIELDS},
                headers={"Prefer": _UTC},
            )
        except SourceNotFound:
            return None
        return event

    async def calendar_delta(
        self,
        user_id: str,
        *,
        delta_link: str | None = None,
        window: tuple[str, str] | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[DeltaPage]:
        """The pages of a calendarView delta query: from `delta_link` (what changed since it
        was issued), or the initial sync of `window` (ISO start, end). SourceNotFound when
        Graph no longer knows the delta token (410)."""
        link: str | None
        params: dict[str, str] | None = None
        if delta_link is not None:
            link = delta_link
        else:
            if window is None:
                raise ValueError("an initial delta query needs a window")
            link = f"users/{quote(user_id, safe='')}/calendarView/delta"
            params = {"startDateTime": window[0], "endDateTime": window[1]}
        headers = {"Prefer": f"{_UTC}, odata.maxpagesize={page_size}"}
        while link:
            page = await self.call("GET", link, params=params, headers=headers)
            params = None  # the links carry their own query
            items = [item for item in page.get("value", []) if isinstance(item, dict)]
            next_link = page.get("@odata.nextLink")
            delta = page.get("@odata.deltaLink")
            yield DeltaPage(items, next_link, delta)
            link = next_link
