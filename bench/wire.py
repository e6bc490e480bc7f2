"""A lean HTTP/1.1 load-generator client: keep-alive connections, whole bodies, JSON answers.

The throughput benchmark's client shares the machine's cores with the servers it measures;
every CPU millisecond it spends per request is one the server under test cannot use. For
one 5 MB upload and its send, httpx spent 7.6 to 11 ms of CPU in our runs, as much as the
bare server spends receiving them, and this client 3 to 4 ms: it writes the request head
and body to the socket as they are and parses only the status line and the headers it
needs (docs/performance.md, ninth round).

It speaks only what the benchmark needs: POST with a ``Content-Length`` body, answers with a
``Content-Length`` or chunked body, keep-alive reuse, one request per connection at a time.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["WireClient", "WireResponse"]


@dataclass
class WireResponse:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


# A connection idle longer than this is not reused: uvicorn closes idle connections after 5 s
# (``timeout_keep_alive``), and a request written as it closes would be lost.
_IDLE_REUSE = 3.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        return (not self.reader.at_eof() and not self.writer.is_closing()
                and time.monotonic() - self.idle_since < _IDLE_REUSE)

    def close(self) -> None:
        self.writer.close()


class WireClient:
    """At most ``connections`` requests in flight, each on a kept-alive connection of its own."""

    def __init__(self, base_url: str, connections: int) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http://host:port is supported, not {base_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._authority = f"{self._host}:{self._port}".encode()
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []

    async def post(self, path: str, *, content: bytes = b"", headers: dict[str, str] | None = None,
                   json: Any = None) -> WireResponse:
        """The same call as ``httpx.AsyncClient.post`` for what the benchmark sends."""
        if json is not None:
            content = jsonlib.dumps(json).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        head = [b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (path.encode(), self._authority,
                                                                             len(content))]
        head += [f"{name}: {value}\r\n".encode("latin-1") for name, value in (headers or {}).items()]
        head.append(b"\r\n")
        async with self._slots:
            conn = await self._connection()
            try:
                conn.writer.write(b"".join(head))
                conn.writer.write(content)
                await conn.writer.drain()
                response, keep = await _read_response(conn.reader)
            except BaseException:
                conn.close()
                raise
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return response

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return _Connection(reader, writer)

    async def __aenter__(self) -> WireClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                await conn.writer.wait_closed()
            except OSError:
                pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[WireResponse, bool]:
    """The response and whether the connection may be reused."""
    block = await reader.readuntil(b"\r\n\r\n")
    lines = block[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = await _read_chunked(reader)
    elif b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    else:  # delimited by the end of the connection
        return WireResponse(status, await reader.read()), False
    keep = headers.get(b"connection", b"").lower() != b"close"
    return WireResponse(status, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
