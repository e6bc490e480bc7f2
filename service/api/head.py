"""HEAD wherever GET: FastAPI routes a GET route for GET alone, so HEAD was a 405 everywhere."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet", "client_method", "headers_only"]

_HEAD = "docexchange.head"


def client_method(scope: Scope) -> str:
    """The method the client sent: HEAD for a HEAD request that runs as a GET."""
    return "HEAD" if scope.get(_HEAD) else str(scope["method"])


def headers_only(scope: Scope) -> bool:
    """Whether the answer to this request is its headers alone (RFC 9110 §9.3.2)."""
    return client_method(scope) == "HEAD"


class HeadAsGet:
    """ASGI middleware: a HEAD request runs as the GET of the same address, and only the
    status and headers of that GET are sent (Content-Length included, as RFC 9110 asks).

    One place for every route, present and future, and none of them shows HEAD in the
    OpenAPI document. The GET runs on a copy of the scope, as the server reads the method
    of its own to leave the body out; the middlewares that keep state in the scope (the
    request's sessions) must therefore run inside this one. The copy carries a mark, so a
    response that can skip its body (a file download) does, and the access log and errors
    name the method the client used.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with the copy: an error answered outside names the request id
        await self.app({**scope, "method": "GET", _HEAD: True}, receive, _without_body(send))


def _without_body(send: Send) -> Send:
    """``send`` with every body message dropped but the last, which goes out empty."""

    async def send_headers(message: Message) -> None:
        if message["type"] == "http.response.pathsend":
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        elif message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {**message, "body": b""}
        await send(message)

    return send_headers
