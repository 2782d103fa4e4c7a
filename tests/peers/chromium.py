"""Headless Chromium (Debian's `chromium`), driven over the DevTools protocol with aiohttp.

No browser driver is needed: Chromium is started with `--remote-debugging-port=0`, the port is
read from the DevToolsActivePort file in its fresh user-data-dir, and commands go over the
browser's websocket (flattened sessions for pages and service workers).

It never reaches beyond this machine: every host name resolves to nothing except localhost
and 127.0.0.1 (`--host-resolver-rules`), proxies and background services are off, and each
page's requests are intercepted (Fetch domain) and failed unless they go to loopback.

A missing Chromium is an error, not a skip: `.ci/run` installs it (`apt-get install chromium`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--remote-debugging-port=0",
)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class CdpError(RuntimeError):
    """A DevTools command failed, or a page script threw."""


def find_chromium() -> str:
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "Chromium is not installed: `apt-get install -y chromium` (the CI script does this); "
        "the consent page is tested in a real browser"
    )


class Chromium:
    """One headless browser; an async context manager."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="herald-chromium-"))
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.events: list[dict[str, Any]] = []
        self.blocked: list[str] = []
        """URLs of requests a page tried to send beyond loopback (failed, never sent)."""

    async def __aenter__(self) -> Chromium:
        executable = find_chromium()
        self._process = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={self._dir}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        port_file = self._dir / "DevToolsActivePort"
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                break
            if self._process.returncode is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        self._http = aiohttp.ClientSession(trust_env=False)
        self._ws = await self._http.ws_connect(
            f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_msg_size=0
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Browser.close"), 5)
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self.events.append(data)
            for listener in list(self._listeners):
                listener(data)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        assert self._ws is not None
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def wait_event(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda params: True,
        timeout: float = 10.0,
        since: int = 0,
        session: str | None = None,
    ) -> dict[str, Any]:
        """The params of the first event `method` (from index `since`, of `session` if given)
        that matches."""

        def matches(event: dict[str, Any]) -> bool:
            return (
                event.get("method") == method
                and (session is None or event.get("sessionId") == session)
                and predicate(event.get("params", {}))
            )

        for event in self.events[since:]:
            if matches(event):
                return dict(event["params"])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def listener(event: dict[str, Any]) -> None:
            if matches(event) and not future.done():
                future.set_result(dict(event["params"]))

        self._listeners.append(listener)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._listeners.remove(listener)

    async def grant(self, origin: str, setting: str = "granted") -> None:
        """Set the notification permission for `origin`, as the person's answer would."""
        await self.send(
            "Browser.setPermission",
            {"permission": {"name": "notifications"}, "setting": setting, "origin": origin},
        )

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.start()
        return page

    async def service_worker(self, script_suffix: str, timeout: float = 10.0) -> Worker:
        """A session in the running service worker whose script URL ends with the suffix."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            targets = (await self.send("Target.getTargets"))["targetInfos"]
            for info in targets:
                if info["type"] == "service_worker" and info["url"].endswith(script_suffix):
                    attached = await self.send(
                        "Target.attachToTarget", {"targetId": info["targetId"], "flatten": True}
                    )
                    return Worker(self, attached["sessionId"])
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no service worker {script_suffix}: {targets}")
            await asyncio.sleep(0.05)


def _value(result: dict[str, Any]) -> Any:
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        description = (details.get("exception") or {}).get("description") or details.get("text")
        raise CdpError(f"script threw: {description}")
    return result["result"].get("value")


class Worker:
    """A session in a service worker: evaluate script in its global scope."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def evaluate(self, expression: str) -> Any:
        result = await self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session,
        )
        return _value(result)


class Page(Worker):
    """A tab: navigate, evaluate, wait for a condition."""

    async def start(self) -> None:
        self.browser._listeners.append(self._intercept)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def _intercept(self, event: dict[str, Any]) -> None:
        if event.get("method") != "Fetch.requestPaused" or event.get("sessionId") != self.session:
            return
        params = event["params"]
        host = urlsplit(params["request"]["url"]).hostname or ""
        if host in LOOPBACK or params["request"]["url"].startswith(("data:", "blob:")):
            command, extra = "Fetch.continueRequest", {}
        else:
            self.browser.blocked.append(params["request"]["url"])
            command, extra = "Fetch.failRequest", {"errorReason": "BlockedByClient"}
        asyncio.get_running_loop().create_task(
            self.send(command, {"requestId": params["requestId"], **extra})
        )

    async def before_scripts(self, source: str) -> None:
        """Run `source` in every document of this tab before its own scripts."""
        await self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    async def navigate(self, url: str, timeout: float = 15.0) -> None:
        since = len(self.browser.events)
        await self.send("Page.navigate", {"url": url})
        await self.browser.wait_event(
            "Page.loadEventFired", timeout=timeout, since=since, session=self.session
        )

    async def evaluate(self, expression: str, *, gesture: bool = False) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": gesture,
            },
        )
        return _value(result)

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll until `expression` is truthy; its value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never true: {expression}")
            await asyncio.sleep(0.05)
