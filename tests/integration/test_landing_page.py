"""GET / and the API reference in a real browser (headless Chromium), as a newcomer opens them.

The start page says what Herald is, shows /healthz and /readyz, and leads to the inbox (ask the
bot), the consent page and the API reference; the reference is Swagger UI served by Herald from
web/vendor, drawing /openapi.json, and nothing is requested from anywhere but this server.
"""

from __future__ import annotations

from pathlib import Path

from api.landing import LandingPages
from tests.harness import RunningHerald
from tests.peers.chromium import Chromium

LINKS = "[...document.querySelectorAll('a')].map((a) => a.getAttribute('href'))"


async def test_the_start_page_says_what_this_is_and_where_to_go(
    herald: RunningHerald, chromium: Chromium
) -> None:
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/")
    await page.wait_for(
        "document.getElementById('readyz').dataset.state !== 'unknown' && "
        "document.getElementById('healthz').dataset.state !== 'unknown'"
    )
    assert await page.evaluate("document.title") == "Herald"
    text = await page.evaluate("document.body.innerText")
    assert "notifications" in text and "say inbox to the Herald bot" in text
    assert await page.evaluate("document.getElementById('healthz').textContent") == "yes"
    assert await page.evaluate("document.getElementById('readyz').dataset.state") == "ok"
    links = await page.evaluate(LINKS)
    assert {"/push/", "/api-docs/", "/openapi.json", "/healthz", "/readyz"} <= set(links)
    assert chromium.blocked == []

    code, body = await herald.request("GET", "/", auth=False)
    assert code == 200 and "<h1>Herald</h1>" in body


async def test_the_api_reference_is_drawn_from_openapi_json_offline(
    herald: RunningHerald, chromium: Chromium
) -> None:
    assert LandingPages().viewer_installed, (
        "the API reference viewer is not installed: npm ci --prefix web/vendor (make test does)"
    )
    page = await chromium.new_page()
    await page.navigate(f"{herald.url}/api-docs/")
    await page.wait_for(
        "document.body.dataset.state === 'ready' && "
        "document.querySelectorAll('.opblock').length > 0",
        timeout=30.0,
    )
    paths = await page.evaluate(
        "[...document.querySelectorAll('.opblock-summary-path')].map((e) => e.dataset.path)"
    )
    assert "/api/notifications" in paths and "/api/notifications/{id}" in paths
    code, spec = await herald.request("GET", "/openapi.json", auth=False)
    assert code == 200
    assert len(paths) == sum(
        1 for item in spec["paths"].values() for method in item if method != "parameters"
    )
    assert chromium.blocked == []  # nothing was requested beyond this server


async def test_without_the_viewer_the_page_says_how_to_get_it(
    herald: RunningHerald, chromium: Chromium, tmp_path: Path
) -> None:
    pages = LandingPages(viewer_dir=tmp_path / "not-installed")
    assert pages.viewer_installed is False
    # The shipped page, with the bundle missing: the same HTML and script, served by Herald,
    # but the bundle request answered 404 (blocked in the page instead of uninstalling it).
    page = await chromium.new_page()
    await page.before_scripts(
        "Object.defineProperty(window, 'SwaggerUIBundle', {get: () => undefined, set: () => {}});"
    )
    await page.navigate(f"{herald.url}/api-docs/")
    await page.wait_for("document.body.dataset.state === 'missing'")
    shown = await page.evaluate("document.getElementById('missing').hidden")
    assert shown is False
    assert "make run" in await page.evaluate("document.getElementById('missing').textContent")
