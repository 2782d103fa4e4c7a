"""POST /api/messages: the Bot Framework endpoint, hardened at the edges.

The SDK's own aiohttp handler turns a few bad requests into 500s (a non-JWT Authorization
header with an empty app id raises jwt.DecodeError, PEERS.md); every such case is answered here
with the right 4xx before or around the adapter.
"""

from __future__ import annotations

import json
import logging

import jwt
from aiohttp import web
from botbuilder.core import Bot
from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError  # type: ignore[attr-defined]

from api.http import error_response, json_response
from proactive.adapter import HeraldAdapter

__all__ = ["MessagesEndpoint"]

log = logging.getLogger(__name__)


class MessagesEndpoint:
    """Authenticates and runs one inbound activity through the adapter and the bot."""

    def __init__(self, adapter: HeraldAdapter, bot: Bot) -> None:
        self._adapter = adapter
        self._bot = bot

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/messages", self.post)]

    async def post(self, request: web.Request) -> web.Response:
        if "application/json" not in request.headers.get("Content-Type", ""):
            return error_response(415, "unsupported_media_type", "activities are application/json")
        try:
            body = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large", "activity too large")
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid_json", "the body is not valid JSON")
        if not isinstance(body, dict):
            return error_response(400, "invalid_activity", "an activity is a JSON object")
        try:
            activity = Activity().deserialize(body)
        except (DeserializationError, TypeError, ValueError, AttributeError) as exc:
            return error_response(400, "invalid_activity", f"not an activity: {exc}")
        if not activity.type:
            return error_response(400, "invalid_activity", "the activity has no type", "type")
        auth_header = request.headers.get("Authorization", "")
        try:
            invoke_response = await self._adapter.process_activity(
                auth_header, activity, self._bot.on_turn
            )
        except (PermissionError, jwt.PyJWTError) as exc:
            log.info("rejected an activity: %s", type(exc).__name__)
            return error_response(401, "unauthorized", "the request is not authenticated")
        if invoke_response:
            return json_response(invoke_response.body, status=invoke_response.status)
        return web.Response(status=201)
