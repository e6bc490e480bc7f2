"""uvicorn's HTTP protocols, refusing what they cannot parse with a problem document.

A request that is not valid HTTP (a control byte in a header, a request line too long to
read) never reaches the application: uvicorn refuses it itself, with a ``text/plain`` 400.
Every error of the service is ``application/problem+json``, so ``docexchange serve`` runs
uvicorn with these protocols, which give the same refusal in that form.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # uvicorn[standard] brings httptools

from service.api.problems import PROBLEM_BASE

__all__ = ["HttpToolsProblemProtocol", "malformed_request_response"]

log = logging.getLogger("docexchange.access")

MALFORMED_DETAIL = ("the request is not valid HTTP/1.1 (e.g. a control character in a header, or a request "
                    "line or header too long); check the client or proxy that sent it")


def malformed_request_response() -> bytes:
    """The whole response to a request that could not be parsed, connection closed after it."""
    request_id = secrets.token_hex(8)
    log.warning("malformed request refused", extra={"request_id": request_id, "status": 400})
    body = json.dumps({"type": PROBLEM_BASE + "malformed-request", "title": "Malformed HTTP request",
                       "status": 400, "detail": MALFORMED_DETAIL, "request_id": request_id}).encode()
    head = ("HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


class _ProblemOn400:
    """Mixed into a uvicorn protocol: its own 400 as a problem document."""

    transport: Any

    def send_400_response(self, msg: str) -> None:
        self.transport.write(malformed_request_response())
        self.transport.close()


class HttpToolsProblemProtocol(_ProblemOn400, HttpToolsProtocol):
    """What ``docexchange serve`` runs (uvicorn's own choice when httptools is installed)."""
