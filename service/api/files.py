"""File downloads whose Range handling follows RFC 9110 and refuses with a problem document.

Starlette's FileResponse answers a Range header it cannot use itself, in text/plain: a 400
for a header it finds malformed (``bytes=abc``, ``items=0-5``), a 416 with an empty body
for one past the end. Here the header is read first: one that is not a valid bytes range
is ignored and the whole file sent (RFC 9110 §14.2), one the file cannot satisfy is a 416
problem with ``Content-Range: bytes */<size>``, and the ranges that can be served are
handed to Starlette written out in full, so that it never refuses them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from service.api.head import headers_only
from service.api.problems import problem

__all__ = ["DownloadResponse", "RangeRefused", "byte_ranges"]

_INT_RANGE = re.compile(r"([0-9]+)-([0-9]*)")
_SUFFIX_RANGE = re.compile(r"-([0-9]+)")
_HUGE = 10**18
_ASK = "ask for bytes=<first>-<last> (counted from 0), bytes=<first>- or bytes=-<how many at the end>"


class RangeRefused(Exception):
    """A bytes range the file cannot satisfy, or one whose end comes before its start."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class _Spec:
    first: int | None  # None: the last ``last`` bytes
    last: int | None


def byte_ranges(header: str, size: int, max_ranges: int = FileResponse.max_ranges) -> list[tuple[int, int]] | None:
    """The (first, last) byte positions a Range header asks of a file of ``size`` bytes,
    clipped to the file; None when the header is to be ignored and the whole file sent.

    Ignored: another unit than bytes, a header that is not a valid byte-range-set, more
    ranges than ``max_ranges``. Raises RangeRefused when no range overlaps the file or one
    ends before it starts. Ranges past the end beside ones that are not are left out.
    """
    unit, equals, range_set = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = _specs(range_set)
    if specs is None or len(specs) > max_ranges:
        return None
    backwards = [s for s in specs if s.first is not None and s.last is not None and s.last < s.first]
    if backwards:
        raise RangeRefused(f"the range {backwards[0].first}-{backwards[0].last} ends before it starts; {_ASK}")
    served = [r for r in (_clip(s, size) for s in specs) if r is not None]
    if not served:
        raise RangeRefused(_past_the_end(size))
    return served


def _past_the_end(size: int) -> str:
    """Why no range asked for can be served, and what can be asked instead."""
    if not size:
        return "the file is empty: ask for it without a Range header"
    return f"the file is {size} bytes long and the range asked for lies past its end; {_ASK}, within 0-{size - 1}"


def _specs(range_set: str) -> list[_Spec] | None:
    """The range specs of a byte-range-set, or None if it is not one (RFC 9110 §14.1.2)."""
    specs = []
    for element in (e.strip(" \t") for e in range_set.split(",")):
        if not element:
            continue  # a list may hold empty elements (RFC 9110 §5.6.1)
        if whole := _INT_RANGE.fullmatch(element):
            specs.append(_Spec(_number(whole[1]), _number(whole[2]) if whole[2] else None))
        elif suffix := _SUFFIX_RANGE.fullmatch(element):
            specs.append(_Spec(None, _number(suffix[1])))
        else:
            return None
    return specs or None


def _number(digits: str) -> int:
    """A position; one of more than 18 digits is past any file, and int() is spared it."""
    return int(digits) if len(digits) <= 18 else _HUGE


def _clip(spec: _Spec, size: int) -> tuple[int, int] | None:
    """The inclusive byte positions ``spec`` asks of ``size`` bytes; None if none of them."""
    if spec.first is None:
        count = min(spec.last or 0, size)
        return (size - count, size - 1) if count else None
    if spec.first >= size:
        return None
    return spec.first, size - 1 if spec.last is None else min(spec.last, size - 1)


class DownloadResponse(FileResponse):
    """A FileResponse that reads the Range header itself (see the module) and answers a
    HEAD request with the headers alone, without reading the file."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if headers_only(scope):
            scope = {**scope, "method": "HEAD"}  # Starlette then sends the headers alone
        header = Headers(scope=scope).get("range")
        if header is None or self.status_code != 200:
            await super().__call__(scope, receive, send)
            return
        size = await self._size()
        try:
            ranges = byte_ranges(header, size) if self._if_range_holds(scope) else None
        except RangeRefused as refusal:
            await self._refuse(scope, receive, send, refusal.detail, size)
            return
        await super().__call__(_with_range(scope, ranges), receive, send)

    async def _size(self) -> int:
        """The file's size; the stat is kept, so Starlette does not make it again."""
        if self.stat_result is None:
            self.stat_result = await anyio.to_thread.run_sync(os.stat, self.path)
            self.set_stat_headers(self.stat_result)
        return self.stat_result.st_size

    def _if_range_holds(self, scope: Scope) -> bool:
        """RFC 9110 §13.1.5: a Range with an If-Range naming another version of the file is
        ignored. A weak validator never matches; Starlette sends the whole file then."""
        validator = Headers(scope=scope).get("if-range")
        if validator is None:
            return True
        return not validator.startswith("W/") and validator in (self.headers.get("etag"),
                                                                self.headers.get("last-modified"))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str, size: int) -> None:
        """A 416 problem; the file's background task (removing a built file) still runs."""
        response = problem(Request(scope), 416, "range-not-satisfiable", "Range not satisfiable", detail)
        response.headers["Content-Range"] = f"bytes */{size}"
        await response(scope, receive, send)
        if self.background is not None:
            await self.background()


def _with_range(scope: Scope, ranges: list[tuple[int, int]] | None) -> Scope:
    """``scope`` with its Range header written out as ``ranges``, or without one for None."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
    if ranges is not None:
        headers.append((b"range", ("bytes=" + ",".join(f"{a}-{b}" for a, b in ranges)).encode("latin-1")))
    return {**scope, "headers": headers}
