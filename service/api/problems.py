"""Every error as application/problem+json (RFC 9457): one table, one place."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.api.head import client_method
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
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(extra.get("retry_after"), int):
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServiceError):
        return await unexpected(request, exc)
    return problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = [_field_error(request, e, exc.__cause__) for e in errors]
    return _invalid(request, fields)


def _invalid(request: Request, fields: list[dict[str, str]]) -> JSONResponse:
    """The 422 for ``fields``; a field named "" is the request body as a whole."""
    detail = "; ".join(f"{f['field']}: {f['message']}" if f["field"] else f["message"] for f in fields)
    return problem(request, 422, "validation-failed", "Invalid request", detail or "the request is not valid",
                   errors=fields)


def _field_error(request: Request, error: Any, cause: BaseException | None) -> dict[str, str]:
    """One entry of the 422's list: the field (dotted path) and what is wrong with it."""
    loc = tuple(error.get("loc", ()))
    if loc[:1] == ("body",) and (message := _body_message(request, error, cause)):
        return {"field": "", "message": message}
    return {"field": ".".join(str(p) for p in loc if p not in ("body", "query", "path")),
            "message": error.get("msg", "")}


_SEND_JSON = "send a JSON object with 'Content-Type: application/json'"
_OBJECT_EXPECTED = frozenset({"model_attributes_type", "model_type", "dict_type"})


def _body_message(request: Request, error: Any, cause: BaseException | None) -> str | None:
    """What is wrong with the body as a whole, in words; None for an error in one field.

    FastAPI reports these as errors of a field named by the JSON decoder's offset, or of
    no field at all ("Field required" for a missing body).
    """
    kind, loc, given = error.get("type"), tuple(error.get("loc", ())), error.get("input")
    if kind == "json_invalid":
        return _not_json(error, cause)
    if loc != ("body",):
        return None
    if kind == "missing":
        return f"the request has no body; {_SEND_JSON}"
    if isinstance(given, bytes | bytearray):
        return _not_read_as_json(request)
    if kind in _OBJECT_EXPECTED:
        return f"the body must be a JSON object ({{...}}), not {_json_kind(given)}"
    return None


def _not_json(error: Any, cause: BaseException | None) -> str:
    """The JSON decoder's complaint, placed by line and column."""
    if isinstance(cause, json.JSONDecodeError):
        where, why = f"line {cause.lineno}, column {cause.colno}", cause.msg
    else:
        where, why = f"character {error.get('loc', ('', '?'))[-1]}", (error.get("ctx") or {}).get("error", "")
    return f"the body is not valid JSON ({why or 'unreadable'} at {where}); correct it and send it again"


def _not_read_as_json(request: Request) -> str:
    """A body FastAPI did not parse: it reads JSON only under a JSON content type."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip()[:100]
    sent = f"as '{media_type}'" if media_type else "without a Content-Type header"
    return f"the body was sent {sent}, so it was not read as JSON; {_SEND_JSON}"


def _json_kind(value: Any) -> str:
    """What a JSON value is, in a clerk's words."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else "this value"


# FastAPI's answer to a body its JSON decoder raised on with something else than a
# JSONDecodeError: nesting past the decoder's recursion limit, bytes that are not UTF-8.
_UNPARSED_BODY = "There was an error parsing the body"


def _unparsed_body(request: Request, cause: BaseException) -> JSONResponse:
    """The 422 for a body the JSON decoder gave up on, in place of FastAPI's bare 400."""
    if isinstance(cause, RecursionError):
        message = ("the body is nested too deeply to be read as JSON (lists or objects thousands of levels "
                   "inside one another); send the JSON object this endpoint documents")
    elif isinstance(cause, UnicodeDecodeError):
        message = f"the body is not UTF-8 text; {_SEND_JSON}, encoded in UTF-8"
    else:
        message = f"the body could not be read as JSON; {_SEND_JSON}"
    return _invalid(request, [{"field": "", "message": message}])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return await unexpected(request, exc)
    if exc.status_code == 400 and exc.detail == _UNPARSED_BODY and exc.__cause__ is not None:
        return _unparsed_body(request, exc.__cause__)
    if exc.status_code == 405:
        return _method_not_allowed(request, exc)
    code, title, default = _HTTP_TITLES.get(exc.status_code, ("http-error", "Request failed", "the request failed"))
    detail = exc.detail if isinstance(exc.detail, str) else default
    if exc.status_code == 404 and detail == "Not Found":
        detail = default
    response = problem(request, exc.status_code, code, title, detail)
    response.headers.update(exc.headers or {})
    return response


def _method_not_allowed(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A 405 naming the methods the address takes, in the detail and in Allow (RFC 9110 §15.5.6)."""
    headers = dict(exc.headers or {})
    allowed = _allowed_methods(request) or [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
    detail = f"{client_method(request.scope)} is not allowed here"
    if allowed:
        detail += f"; use {_one_of(allowed)}"
    response = problem(request, 405, "method-not-allowed", "Method not allowed", detail)
    response.headers.update({**headers, "Allow": ", ".join(allowed)})
    return response


def _one_of(words: list[str]) -> str:
    """'A', 'A or B', 'A, B or C'."""
    return " or ".join(filter(None, (", ".join(words[:-1]), words[-1])))


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes, found by asking the routes with each.

    Starlette's Allow names the methods of the first route of the path only (GET /users
    and POST /users are two routes). HEAD goes with GET, as service.api.head answers it.
    """
    allowed = [method for method in _METHODS if _routed(request, method)]
    return sorted({*allowed, "HEAD"} if "GET" in allowed else allowed)


def _routed(request: Request, method: str) -> bool:
    """Whether a route takes ``method`` at the request's path (a fresh scope: matching writes to it)."""
    probe = {"type": "http", "method": method, "path": request.scope["path"],
             "root_path": request.scope.get("root_path", ""), "headers": []}
    return any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes)


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
    return await unexpected(request, exc)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The 500 of an error no handler knows (``api.observability`` answers with it)."""
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
    # Handled where routes raise them (a handler for Exception would run outermost, where
    # Starlette answers, then raises the error again and the server closes the connection).
    app.add_exception_handler(DBAPIError, _database_error)  # storage.driver raises the driver's errors as these
    app.add_exception_handler(UnicodeEncodeError, _database_error)  # sqlite3 under SQLAlchemy raises it as it is
    # An error no handler above knows is answered by api.observability's middleware: inside
    # it, the answer carries the request id, and the connection stays open.
