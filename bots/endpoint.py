"""POST /api/messages: the Bot Framework endpoint, hardened at the edges (DESIGN: Security).

In Bot Framework mode (a MicrosoftAppId) the Authorization header is verified - signature,
issuer, audience - before a byte of the body is read; once the body is parsed (with the API's
bounded reader) the SDK checks the token again against the activity, which adds the checks
that need it (the channel's endorsement, the `serviceurl` claim). Whatever goes wrong inside
the SDK's token validation - a token without `iss`, bytes that are no text, a key nobody
published - is a 401; only signing keys that cannot be fetched are a 503.

Emulator mode (no app id) has no token to check: it trusts the caller, which is why it listens
on loopback only (config.py) and sends only to loopback serviceUrls (proactive/service_url.py).
A token sent to it could never be valid (its audience would have to be empty), so it is refused
before anything is fetched to check it.

Every activity is checked against `InboundActivity` before the SDK deserialises it: a malformed
one is a 400 naming the field, logged as one warning line, and nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import requests
from aiohttp import web
from botbuilder.core import Bot
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticateRequestResult, BotFrameworkAuthentication
from msrest.exceptions import DeserializationError  # type: ignore[attr-defined]
from pydantic import ValidationError

from api.http import ApiProblem, error_response, json_response, read_json
from api.routing import (
    PUBLIC,
    RawBody,
    Route,
    error,
)
from bots.inbound import InboundActivity
from notifications.problems import first_problem
from proactive.adapter import HeraldAdapter
from proactive.service_url import ServiceUrlPolicy

__all__ = ["KEYS_TIMEOUT_SECONDS", "MessagesEndpoint"]

log = logging.getLogger(__name__)

KEYS_TIMEOUT_SECONDS: Final = 20.0
"""How long token validation may wait for the Bot Framework's signing keys before a 503."""


class _Refused(Exception):
    """An answer other than a turn: status, code, message, field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _invoke_body(body: Any) -> Any:
    """An invoke answer's body as JSON (botbuilder answers some invokes with msrest models)."""
    return body.serialize() if hasattr(body, "serialize") else body


class MessagesEndpoint:
    """Authenticates and runs one inbound activity through the adapter and the bot.

    `auth` is None in Emulator mode; `service_urls` is the policy activities' serviceUrls
    must meet (loopback only in Emulator mode).
    """

    def __init__(
        self,
        adapter: HeraldAdapter,
        bot: Bot,
        *,
        auth: BotFrameworkAuthentication | None = None,
        service_urls: ServiceUrlPolicy | None = None,
    ) -> None:
        self._adapter = adapter
        self._bot = bot
        self._auth = auth
        self._service_urls = service_urls or ServiceUrlPolicy()

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/api/messages",
                self.post,
                PUBLIC,
                doc={
                    "operationId": "postActivity",
                    "summary": "Bot Framework activities (Emulator, Teams, Direct Line).",
                    "responses": {
                        "200": {
                            "description": "Invoke response, or the replies of an activity "
                            "with deliveryMode expectReplies."
                        },
                        "201": {"description": "Processed."},
                        "400": error(
                            "Not an activity: bad JSON, a malformed field (named), or a "
                            "serviceUrl Herald does not send to. Nothing was stored."
                        ),
                        "401": error(
                            "Not authenticated: no or a bad Bot Framework token (Bot Framework "
                            "mode; checked before the body is read), or any token in Emulator "
                            "mode."
                        ),
                        "413": error("Body too large."),
                        "415": error("Not application/json."),
                        "501": {"description": "An invoke the bot does not handle."},
                        "503": error(
                            "The Bot Framework's signing keys could not be fetched; try again "
                            "after Retry-After seconds."
                        ),
                    },
                },
                # Read by the handler: the token is checked before the body is read, and an
                # activity is botbuilder's Activity, refused with the endpoint's own codes.
                body=RawBody({"application/json": {"schema": {"type": "object"}}}),
            ),
        ]

    async def post(self, request: web.Request) -> web.Response:
        try:
            header = request.headers.get("Authorization", "")
            if self._auth is None:
                if header:
                    raise _Refused(
                        401, "unauthorized",
                        "Emulator mode (no MicrosoftAppId) accepts no tokens: leave the app id "
                        "and password empty in the Emulator, or give the bot its MicrosoftAppId",
                    )
            elif not header:
                raise _Refused(401, "unauthorized", "the request is not authenticated")
            else:
                # No channel id, no serviceUrl: checks what the header alone can prove.
                await self._authenticate(Activity(), header)
            activity = await self._activity(request)
            if self._auth is not None:
                checked: str | AuthenticateRequestResult = await self._authenticate(
                    activity, header
                )
            else:
                checked = ""  # the SDK's anonymous identity (authentication is disabled)
        except _Refused as refused:
            level = logging.INFO if refused.status in (401, 503) else logging.WARNING
            log.log(
                level, "refused an activity: %s %s%s: %s", refused.status, refused.code,
                f" ({refused.field})" if refused.field else "", _one_line(refused.message),
            )
            return error_response(
                refused.status, refused.code, refused.message, refused.field, refused.headers
            )
        invoke_response = await self._adapter.process_activity(
            checked, activity, self._bot.on_turn
        )
        if invoke_response:
            return json_response(_invoke_body(invoke_response.body), status=invoke_response.status)
        return web.Response(status=201)

    async def _activity(self, request: web.Request) -> Activity:
        """The body as an Activity, or _Refused saying what is wrong with it."""
        try:
            body = await read_json(request)
        except ApiProblem as problem:
            raise _Refused(problem.status, problem.code, problem.message, problem.field) from None
        if not isinstance(body, dict):
            raise _Refused(400, "invalid_activity", "an activity is a JSON object")
        try:
            InboundActivity.model_validate(body, context={"service_urls": self._service_urls})
        except ValidationError as exc:
            first = first_problem(exc)
            code = "invalid_activity" if first.code == "invalid_field" else first.code
            raise _Refused(400, code, first.message, first.field) from None
        try:
            activity: Activity = Activity().deserialize(body)
        except (DeserializationError, TypeError, ValueError, AttributeError) as exc:
            raise _Refused(400, "invalid_activity", f"not an activity: {exc}") from None
        return activity

    async def _authenticate(self, activity: Activity, header: str) -> AuthenticateRequestResult:
        """The SDK's verdict on `header` for `activity`, or _Refused (401, or 503 when the
        signing keys cannot be fetched).

        botbuilder fetches signing keys with blocking `requests` calls (no timeout) inside this
        coroutine, so it runs on a worker thread with an event loop of its own: a slow key
        endpoint then holds one request, not the server. The SDK's objects hold no loop state.
        """
        assert self._auth is not None
        try:
            async with asyncio.timeout(KEYS_TIMEOUT_SECONDS):
                result: AuthenticateRequestResult = await asyncio.to_thread(
                    asyncio.run, self._auth.authenticate_request(activity, header)
                )
        except (requests.RequestException, TimeoutError) as exc:
            log.warning("the Bot Framework's signing keys could not be fetched: %s",
                        _one_line(str(exc) or type(exc).__name__))
            raise _Refused(
                503, "keys_unavailable",
                "the Bot Framework's signing keys could not be fetched; try again shortly",
                headers={"Retry-After": "10"},
            ) from None
        except Exception as exc:  # anything the SDK raises on a bad token (KeyError, ...)
            raise _Refused(
                401, "unauthorized", f"the request is not authenticated ({type(exc).__name__})"
            ) from None
        return result
