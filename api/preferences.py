"""GET/PUT /api/users/{id}/preferences: a user's preference document, with etags.

GET answers the document (the default one for a user who never set any) and its `ETag`. PUT
replaces the whole document and needs `If-Match` with that etag (RFC 9110): without it the
answer is 428, with a stale one 412 and nothing changes, so two writers (two backends, or a
backend and the user's own card in chat) never silently overwrite each other.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel

from api.http import ApiProblem, json_response, path_param
from api.routing import (
    BACKEND,
    REF,
    UNAUTHORIZED,
    Body,
    Route,
    body,
    error,
    named_body,
    path_id,
)
from api.users import USER_KEY
from errors import ConcurrencyConflict, NotFound
from preferences.model import ChannelPreferences, UserPreferences
from preferences.service import PreferencesService, Snapshot
from storage.protocols import UserStore

__all__ = ["PreferencesApi", "format_etag", "parse_etags"]

_ANY: Final = "*"


_PY_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


_HH_MM = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"


_ETAG = '^"[!#-~]+"$'
"""A strong entity tag, as Herald issues them (RFC 9110 etagc without obs-text)."""


def _header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_ETAG_HEADER = _header(
    "The version of the preferences document: send it back in If-Match (PUT) or "
    "If-None-Match (GET).",
    {"type": "string", "pattern": _ETAG},
)


def _preferences_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": named_body("UserPreferencesDocument"),
        "headers": {
            "ETag": _ETAG_HEADER,
            "Content-Location": _header(
                "Where this document lives.",
                {"type": "string", "pattern": "^/api/users/.+/preferences$"},
            ),
            "Cache-Control": _header(
                "Never cached: always read the current version.", {"const": "no-store"}
            ),
        },
    }


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def document_preferences_schemas(schemas: dict[str, Any]) -> None:
    """What UserPreferences' validators check beyond the types, and the answer's shape."""
    prefs = schemas["UserPreferences"]
    prefs["description"] = (
        "One person's notification preferences. PUT replaces the whole document: a field left "
        "out gets its default."
    )
    properties = prefs["properties"]
    properties["optedIn"]["description"] = (
        "null: never asked (matters only when the operator requires opt-in); false: opted out."
    )
    properties["mutedTypes"]["items"] = {"type": "string", "pattern": f"[^{_PY_SPACE}]"}
    properties["mutedTypes"]["description"] = (
        "Event types never delivered to this person (an urgent event of a critical type still "
        "is). Saved trimmed, lower-case, without duplicates, sorted."
    )
    properties["timeZone"]["description"] = (
        "IANA time zone name quiet hours are read in (e.g. Europe/Berlin); null, or \"\" (no "
        "time zone: saved as null), means UTC. A name Herald's time zone database does not "
        "know is refused with 400."
    )
    properties["updatedAt"]["description"] = (
        "When the document was last saved (RFC 3339 date-time, or null), set by Herald on every "
        "write; a value sent is replaced."
    )
    quiet = schemas["QuietHours"]
    for key in ("start", "end"):
        quiet["properties"][key]["pattern"] = _HH_MM
    quiet["description"] = (
        "A daily window, in the person's time zone, in which only urgent notifications go out; "
        "others are deferred to its end. `start` is in the window, `end` is not; `start` later "
        "than `end` crosses midnight; `start` equal to `end` is refused with 400."
    )
    schemas["UserPreferencesDocument"] = {
        "title": "UserPreferencesDocument",
        "description": "The preferences as Herald answers them: every field is present.",
        "allOf": [{"$ref": REF.format(model="UserPreferences")}],
        "required": _aliases(UserPreferences),
        "properties": {"channels": {"required": _aliases(ChannelPreferences)}},
    }


def format_etag(etag: str) -> str:
    """A strong entity tag as a header value."""
    return f'"{etag}"'


def parse_etags(header: str) -> list[str] | None:
    """The entity tags of an If-Match / If-None-Match value; None for `*`.

    Weak tags (`W/"x"`) are kept with their prefix: If-Match compares strongly, so they never
    match an etag Herald issued. An unquoted tag is taken as it is.
    """
    value = header.strip()
    if value == _ANY:
        return None
    tags: list[str] = []
    for part in value.split(","):
        tag = part.strip()
        if not tag:
            continue
        if tag.startswith('"') and tag.endswith('"') and len(tag) >= 2:
            tag = tag[1:-1]
        tags.append(tag)
    return tags


class PreferencesApi:
    """Preferences for backends holding an API key."""

    def __init__(self, users: UserStore, preferences: PreferencesService) -> None:
        self._users = users
        self._preferences = preferences

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/api/users/{id}/preferences",
                self.get,
                BACKEND,
                doc={
                    "operationId": "getUserPreferences",
                    "summary": "A user's preferences (the defaults if they never set any).",
                    "parameters": [
                        path_id("The user's id or alias.", USER_KEY),
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "description": "ETags the client holds, or `*`: when one matches "
                            "the current version (weak comparison), the answer is 304.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _preferences_answer("The preferences and their ETag."),
                        "304": {
                            "description": "Not modified: If-None-Match named the current "
                            "version (or was `*`). No body.",
                            "headers": {"ETag": _ETAG_HEADER},
                        },
                        "400": error("Not a valid user id or alias."),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                    },
                },
            ),
            Route(
                "PUT",
                "/api/users/{id}/preferences",
                self.put,
                BACKEND,
                doc={
                    "operationId": "putUserPreferences",
                    "summary": "Replace a user's preferences, if they are still the version read.",
                    "description": "Optimistic concurrency (RFC 9110): send the ETag from GET in "
                    "If-Match. Without it the answer is 428, with a tag that is no longer "
                    "current 412; either way nothing is written, so two writers never lose "
                    "each other's change.",
                    "parameters": [
                        path_id("The user's id or alias.", USER_KEY),
                        {
                            "name": "If-Match",
                            "in": "header",
                            "required": True,
                            "description": "The ETag from GET (a comma-separated list matches "
                            "if any tag does; weak tags never match), or `*` for whatever is "
                            "current.",
                            "schema": {"type": "string", "pattern": "[!-~]"},
                        },
                    ],
                    "responses": {
                        "200": _preferences_answer("Saved; the new ETag."),
                        "400": error(
                            "Invalid user id, a body that is not JSON or not an object, or an "
                            "invalid or unknown field; nothing was written."
                        ),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                        "412": error(
                            "If-Match names no current version: the preferences changed since "
                            "they were read. Nothing was written; GET them again."
                        ),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                        "428": error("No If-Match header (or an empty one); nothing was written."),
                    },
                },
                body=Body(UserPreferences, not_object="the preferences document is a JSON object"),
            ),
        ]

    async def _user(self, request: web.Request) -> str:
        key = path_param(request, "id", USER_KEY)
        resolved = await self._users.resolve([key])
        if key not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {key!r}", "id")
        return resolved[key]

    async def _read(self, user_id: str) -> Snapshot:
        try:
            return await self._preferences.read(user_id)
        except NotFound as exc:
            raise ApiProblem(404, "not_found", f"no user with id {user_id!r}", "id") from exc

    @staticmethod
    def _answer(snapshot: Snapshot, user_id: str) -> web.Response:
        return json_response(
            snapshot.prefs.to_json_dict(),
            headers={
                "ETag": format_etag(snapshot.etag),
                "Content-Location": f"/api/users/{quote(user_id, safe=':@')}/preferences",
                "Cache-Control": "no-store",
            },
        )

    async def get(self, request: web.Request) -> web.StreamResponse:
        user_id = await self._user(request)
        snapshot = await self._read(user_id)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = parse_etags(if_none_match)
            # If-None-Match compares weakly: W/"x" matches "x".
            if tags is None or snapshot.etag in (t.removeprefix("W/").strip('"') for t in tags):
                return web.Response(status=304, headers={"ETag": format_etag(snapshot.etag)})
        return self._answer(snapshot, user_id)

    async def put(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        if_match = request.headers.get("If-Match")
        if if_match is None or not if_match.strip():
            raise ApiProblem(
                428,
                "precondition_required",
                "send If-Match with the ETag from GET /api/users/{id}/preferences, so that "
                "changes made meanwhile are not overwritten",
                "If-Match",
            )
        wanted = await body(request, UserPreferences)
        tags = parse_etags(if_match)
        current = await self._read(user_id)
        if tags is None:
            expected = current.etag  # `*`: the user exists, so any current document matches
        elif current.etag in tags:
            expected = current.etag
        else:
            raise _stale()
        try:
            saved = await self._preferences.replace(user_id, wanted, expected)
        except ConcurrencyConflict as exc:
            raise _stale() from exc
        except NotFound as exc:
            raise ApiProblem(404, "not_found", f"no user with id {user_id!r}", "id") from exc
        return self._answer(saved, user_id)


def _stale() -> ApiProblem:
    return ApiProblem(
        412,
        "precondition_failed",
        "the preferences changed since that ETag was read; GET them again and reapply your change",
        "If-Match",
    )
