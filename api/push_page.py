"""GET /push/: the browser-notification consent page and its service worker, from web/.

Static files, read once at start-up and served from memory; no build step. The page is served
with headers that keep the link token it arrives with to itself: no Referer leaves it, nothing
caches it, no other site can frame it, and it runs only its own scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

from api.routing import PUBLIC, Route

__all__ = ["WEB_DIR", "PushPage"]

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"

_FILES: Final[dict[str, tuple[str, str]]] = {
    "/push/": ("push.html", "text/html"),
    "/push/push.js": ("push.js", "text/javascript"),
    "/push/push.css": ("push.css", "text/css"),
    # The worker's URL decides its scope (/push/): it must be served from this path.
    "/push/sw.js": ("sw.js", "text/javascript"),
}

_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' https: data:; manifest-src 'self'; worker-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class PushPage:
    """Serves the consent page, its script and style, and the service worker."""

    def __init__(self, web_dir: Path = WEB_DIR) -> None:
        self._files = {
            path: ((web_dir / name).read_bytes(), content_type)
            for path, (name, content_type) in _FILES.items()
        }

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/push", self.redirect, PUBLIC),
            *(Route("GET", path, self.serve, PUBLIC) for path in _FILES),
        ]

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        location = "/push/" + (f"?{request.query_string}" if request.query_string else "")
        raise web.HTTPPermanentRedirect(location, headers={"Referrer-Policy": "no-referrer"})

    async def serve(self, request: web.Request) -> web.Response:
        body, content_type = self._files[request.path]
        headers = dict(_SECURITY_HEADERS)
        # The page's URL carries a token: never stored. Scripts are revalidated each time so
        # a new service worker reaches browsers at once.
        headers["Cache-Control"] = "no-store" if content_type == "text/html" else "no-cache"
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)
