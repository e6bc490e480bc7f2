"""Request ids, JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

__all__ = ["JsonFormatter", "configure_logging", "install_observability"]

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
    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request.state.request_id = incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else secrets.token_hex(8)
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(elapsed)
        response.headers["X-Request-ID"] = request.state.request_id
        log.info("request", extra={"request_id": request.state.request_id, "method": request.method,
                                   "path": request.url.path, "status": response.status_code,
                                   "duration_ms": round(elapsed * 1000, 1),
                                   "user_id": getattr(request.state, "user_id", None)})
        return response
