"""GET /: what this server is, whether it is healthy, and where to go next; GET /api-docs/:
the API reference, drawn from /openapi.json by Swagger UI served from this machine.

Before this page, a newcomer opening http://localhost:3978/ got a JSON 404 and no hint of the
inbox, the consent page or the API. The page is static HTML (read once at start-up, like the
other pages); a small script fills in /healthz and /readyz. The API reference viewer is
`swagger-ui-dist`, pinned in web/vendor/package.json and installed by `make run` with npm ci:
nothing is fetched from the internet when the page is opened, so it works offline. Where it is
not installed (no npm on the machine), /api-docs/ says how to install it and links the raw
/openapi.json instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

from api.push_page import WEB_DIR
from api.routing import PUBLIC, Route

__all__ = ["SWAGGER_UI_DIR", "LandingPages"]

SWAGGER_UI_DIR: Final = WEB_DIR / "vendor" / "node_modules" / "swagger-ui-dist"
"""Where `npm ci --prefix web/vendor` puts the viewer."""

_OWN: Final[dict[str, tuple[str, str]]] = {
    "/": ("index.html", "text/html"),
    "/landing/landing.css": ("landing.css", "text/css"),
    "/landing/landing.js": ("landing.js", "text/javascript"),
    "/api-docs/": ("api-docs.html", "text/html"),
    "/api-docs/api-docs.js": ("api-docs.js", "text/javascript"),
}
_VIEWER: Final[dict[str, tuple[str, str]]] = {
    "/api-docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    "/api-docs/swagger-ui.css": ("swagger-ui.css", "text/css"),
}

_SECURITY_HEADERS: Final = {
    # Only this origin's scripts, styles and API; Swagger UI's icons are data: URIs.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class LandingPages:
    """Serves the start page and the API reference (and the viewer's two files, if installed)."""

    def __init__(self, web_dir: Path = WEB_DIR, viewer_dir: Path = SWAGGER_UI_DIR) -> None:
        self._files = {
            path: ((web_dir / name).read_bytes(), content_type)
            for path, (name, content_type) in _OWN.items()
        }
        self.viewer_installed = all((viewer_dir / name).is_file() for name, _ in _VIEWER.values())
        if self.viewer_installed:
            self._files.update(
                {
                    path: ((viewer_dir / name).read_bytes(), content_type)
                    for path, (name, content_type) in _VIEWER.items()
                }
            )

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api-docs", self.api_docs_redirect, PUBLIC),
            *(Route("GET", path, self.asset, PUBLIC) for path in (*_OWN, *_VIEWER)),
        ]

    async def api_docs_redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/api-docs/")

    async def asset(self, request: web.Request) -> web.Response:
        found = self._files.get(request.path)
        if found is None:  # the viewer is not installed: the page itself says so
            raise web.HTTPNotFound(
                text="the API reference viewer is not installed: run `make run` (npm ci "
                "--prefix web/vendor); the raw description is /openapi.json"
            )
        body, content_type = found
        headers = dict(_SECURITY_HEADERS)
        headers["Cache-Control"] = "no-cache"
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)
