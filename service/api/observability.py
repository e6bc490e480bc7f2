"""Request ids, JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.head import client_method
from service.api.problems import unexpected
from service.auth.service import TOKEN_PREFIX

__all__ = ["JsonFormatter", "ObservabilityMiddleware", "configure_logging", "install_observability"]

REQUESTS = Counter("docexchange_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("docexchange_http_request_seconds", "HTTP request latency", ["method", "route"])
log = logging.getLogger("docexchange.access")

_SECRET_KEYS = ("authorization", "password", "token", "passphrase", "secret")
# A client's own request id is kept when it is plain ASCII (it is echoed in a header and
# quoted in logs); any other, like a missing one, is replaced by one made here.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# A bearer token pasted where an id goes (a path, X-Request-ID) is kept out of the logs.
_TOKEN_LIKE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{16,}")


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


def _request_id(incoming: str) -> str:
    """The client's X-Request-ID if it is 8-64 ASCII letters, digits, '-', '_' or '.' and does
    not look like a token, else a new one."""
    if _CLIENT_REQUEST_ID.fullmatch(incoming) and not _TOKEN_LIKE.search(incoming):
        return incoming
    return secrets.token_hex(8)


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
        request_id = _request_id(Headers(scope=scope).get("x-request-id", ""))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status, started = 500, False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:  # the answer is under way: nothing can be added to it
                raise
            await (await unexpected(Request(scope), exc))(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            route, method = getattr(scope.get("route"), "path", "unmatched"), client_method(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            path = _TOKEN_LIKE.sub(TOKEN_PREFIX + "…", scope["path"])
            log.info("request", extra={"request_id": request_id, "method": method, "path": path,
                                       "status": status, "duration_ms": round(elapsed * 1000, 1),
                                       "user_id": state.get("user_id")})

