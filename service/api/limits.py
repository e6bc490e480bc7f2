"""How large a request body may be, decided before anything reads it.

Every body is held to ``BODY_LIMIT`` (a send to 15,000 units named one by one is under
1 MB): FastAPI reads and parses a JSON body before the dependencies run, the token check
among them, so without a limit anyone could make the process parse tens of megabytes.
The routes that stream their body to disk hold it to a limit of their own (an upload:
``DOCEX_MAX_UPLOAD_BYTES``) and are let through.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem
from service.documents import TooLargeError

__all__ = ["BODY_LIMIT", "BodyLimit", "BodyTooLargeError"]

BODY_LIMIT = 4 * 1024 * 1024
_REFUSAL = f"the request body is larger than {BODY_LIMIT // (1024 * 1024)} MB"


class BodyTooLargeError(TooLargeError):
    title = "Request too large"


class BodyLimit:
    """ASGI middleware: a body over ``limit`` is a 413 problem, refused from its declared
    length when it has one, else as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, streamed: frozenset[tuple[str, str]], limit: int = BODY_LIMIT) -> None:
        self.app, self.streamed, self.limit = app, streamed, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _refusal(scope)(scope, receive, send)
            return
        seen, over, replaced = 0, False, False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                over = True
                raise BodyTooLargeError(_REFUSAL)
            return message

        async def answered(message: Message) -> None:
            # FastAPI turns an error met while reading a JSON body into its own 400: the
            # answer to a body over the limit is this 413, whoever read it.
            nonlocal replaced
            if over and not replaced and message["type"] == "http.response.start":
                replaced = True
                await _refusal(scope)(scope, receive, send)
            elif not replaced:
                await send(message)

        await self.app(scope, limited, answered)


def _refusal(scope: Scope) -> Response:
    return problem(Request(scope), 413, BodyTooLargeError.code, BodyTooLargeError.title, _REFUSAL)
