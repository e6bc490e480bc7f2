"""Every error as application/problem+json (RFC 9457): one table, one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

__all__ = ["install_problem_handlers", "problem"]

log = logging.getLogger("docexchange.api")
PROBLEM_BASE = "https://docexchange.invalid/problems/"

_HTTP_TITLES = {
    401: ("unauthenticated", "Authentication required", "send 'Authorization: Bearer <token>'"),
    404: ("not-found", "Not found", "there is no such resource"),
    405: ("method-not-allowed", "Method not allowed", "this resource does not accept that method"),
    413: ("too-large", "Request too large", "the request body is over the size limit"),
    415: ("unsupported-media-type", "Unsupported media type", "send the content type this endpoint documents"),
}


def problem(request: Request, status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail,
            "instance": request.url.path, "request_id": getattr(request.state, "request_id", None), **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServiceError):
        return await _unexpected(request, exc)
    return problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")),
               "message": e.get("msg", "")} for e in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "the request is not valid"
    return problem(request, 422, "validation-failed", "Invalid request", detail, errors=fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    code, title, default = _HTTP_TITLES.get(status, ("http-error", "Request failed", "the request failed"))
    detail = exc.detail if isinstance(exc, StarletteHTTPException) and isinstance(exc.detail, str) else default
    if status == 404 and detail == "Not Found":
        detail = default
    return problem(request, status, code, title, detail)


async def _race_lost(request: Request, exc: Exception) -> JSONResponse:
    # A uniqueness race with a concurrent request (e.g. the same document sent twice at
    # once): the transaction was rolled back, so nothing of this request is kept.
    return problem(request, 409, "conflict", "Conflict",
                   "another request changed the same data at the same moment; nothing was changed, retry")


# PostgreSQL's codes for text it cannot hold: a NUL character (U+0000), or a character
# outside the database's encoding.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
_TOO_LONG = "22001"  # string_data_right_truncation: a text longer than its column


def _unstorable_text(exc: BaseException) -> bool:
    # SQLAlchemy wraps the driver's error; either driver fails to encode a lone surrogate.
    for err in _causes(exc):
        if isinstance(err, UnicodeEncodeError) or _sqlstate(err) in _UNSTORABLE_TEXT:
            return True
    return False


def _too_long(exc: BaseException) -> bool:
    return any(_sqlstate(err) == _TOO_LONG for err in _causes(exc))


def _causes(exc: BaseException) -> tuple[object, ...]:
    return (exc, getattr(exc, "orig", None), exc.__cause__, exc.__context__)


def _sqlstate(err: object) -> str | None:
    code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
    return code if isinstance(code, str) else None


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Request models refuse control characters; this catches text that reaches PostgreSQL
    # another way (a path or query parameter). The transaction is rolled back.
    if _unstorable_text(exc):
        return problem(request, 422, "unstorable-text", "Invalid text",
                       "the request holds text no field may contain: a NUL character (U+0000) or half of "
                       "a surrogate pair (such as \\ud800 in JSON); remove it and send again")
    if _too_long(exc):
        # The request models hold every text to its column's length; a text that grows on
        # the way (Unicode normalisation, a search key derived from it) may still not fit.
        return problem(request, 422, "text-too-long", "Text too long",
                       "a text of the request is longer than its field allows once normalised (some "
                       "characters become two); shorten the longest field and send it again")
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with the request id for operators; the client sees no internals.
    log.exception("unexpected error", extra={"request_id": getattr(request.state, "request_id", None)})
    return problem(request, 500, "internal-error", "Internal error",
                   "the service could not complete the request; nothing was changed. "
                   "Quote the request id to the administrator.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _race_lost)
    # Handled where routes raise them (a handler for Exception runs outermost, and Starlette
    # raises the error again after it, to be logged as a crash).
    app.add_exception_handler(DBAPIError, _database_error)  # storage.driver raises the driver's errors as these
    app.add_exception_handler(UnicodeEncodeError, _database_error)  # sqlite3 under SQLAlchemy raises it as it is
    app.add_exception_handler(Exception, _unexpected)
