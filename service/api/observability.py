"""Request ids, JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JsonFormatter", "ObservabilityMiddleware", "configure_logging", "install_observability"]

REQUESTS = Counter("docexchange_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("docexchange_http_request_seconds", "HTTP request latency", ["method", "route"])
log = logging.getLogger("docexchange.access")

_SECRET_KEYS = ("authorization", "password", "token", "passphrase", "secret")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields that might hold secrets are dropped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in ("request_id", "method", "path", "status", "duration_ms", "user_id", "event"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("docexchange")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def install_observability(app: FastAPI) -> None:
    app.add_middleware(ObservabilityMiddleware)


class ObservabilityMiddleware:
    """Request id, access log line and metrics for every HTTP request.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper runs each request
    in a task group of its own and copies the body through a stream, which costs more
    than the rest of a small request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info("request", extra={"request_id": request_id, "method": scope["method"], "path": scope["path"],
                                       "status": status, "duration_ms": round(elapsed * 1000, 1),
                                       "user_id": state.get("user_id")})

