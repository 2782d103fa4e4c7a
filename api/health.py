"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from api.http import model_response
from api.routing import (
    PUBLIC,
    Answer,
    Route,
    json_body,
)

__all__ = ["HealthApi"]


class MobilePushServices(Answer):
    """Which mobile push services this instance sends through (not a readiness check)."""

    fcm: bool
    apns: bool
    prefer: Literal["fcm", "apns"] = Field(
        description="Which of the two sends to a device registered with both tokens."
    )


class Health(Answer):
    status: Literal["ok", "ready", "not-ready"]
    checks: dict[str, bool] | None = None
    mobile: MobilePushServices | None = None


class HealthApi:
    """`/healthz` says the process serves; `/readyz` that the store answers and workers run
    (and, from `about`, facts that do not make it unready: which push services are on)."""

    def __init__(
        self,
        ready: Callable[[], Awaitable[dict[str, bool]]],
        metrics: Callable[[], Awaitable[str]],
        about: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._ready = ready
        self._metrics = metrics
        self._about = about

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/healthz",
                self.healthz,
                PUBLIC,
                doc={
                    "operationId": "healthz",
                    "responses": {"200": {"description": "Alive.", "content": json_body(Health)}},
                },
            ),
            Route(
                "GET",
                "/readyz",
                self.readyz,
                PUBLIC,
                doc={
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "Ready.", "content": json_body(Health)},
                        "503": {"description": "Not ready.", "content": json_body(Health)},
                    },
                },
            ),
            Route(
                "GET",
                "/metrics",
                self.metrics,
                PUBLIC,
                doc={
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                },
            ),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return model_response(Health, {"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await self._ready()
        ok = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ok else "not-ready", "checks": checks}
        if self._about is not None:
            body.update(self._about())
        return model_response(Health, body, status=200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            text=await self._metrics(), content_type="text/plain", charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )
