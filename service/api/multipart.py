"""Streaming multipart/form-data: files go to the blob store as they arrive.

Starlette's form parser spools every file to a temporary file before the
endpoint runs; here each chunk is hashed and written once, in 1 MiB steps off
the event loop, and the size limit stops the upload as soon as it is passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.documents import BlobStore, BlobWriter, TooLargeError
from service.errors import InvalidInputError, ServiceError
from service.text import plain_text

if TYPE_CHECKING:  # the TypedDict exists only for type checkers
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["ReceivedFile", "ReceivedForm", "read_small_body", "receive_body", "receive_form"]

MAX_FIELD_BYTES = 1024 * 1024
# The text fields of one form together (the upload reads 'metadata' alone): without it a form of
# thousands of 1 MB fields, streamed without a Content-Length, would be held in memory whole.
MAX_TEXT_BYTES = 2 * MAX_FIELD_BYTES
MAX_BOUNDARY = 70  # RFC 2046: a boundary is 1 to 70 characters
MAX_FILENAME, MAX_MEDIA_TYPE = 255, 100  # what the document and attachment rows hold
# A media type as RFC 9110 writes it (type "/" subtype, token characters only): what the
# service stores is sent back one day as a Content-Type header, so it must be a valid one.
_MEDIA_TYPE = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+/[A-Za-z0-9!#$%&'*+.^_`|~-]+")


class UnsupportedMediaTypeError(ServiceError):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


@dataclass
class ReceivedFile:
    field: str
    filename: str
    content_type: str
    writer: BlobWriter
    sha256: str = ""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[ReceivedFile] = field(default_factory=list)

    def discard(self) -> None:
        for f in self.files:
            f.writer.discard()


class _Events:
    """Collects the parser's synchronous callbacks for the async loop to act on."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._name = b""
        self._value = b""
        self.headers: dict[bytes, bytes] = {}
        self.ended = False  # the closing delimiter was read: the form is whole

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": lambda: self.headers.clear(),
            "on_header_field": lambda d, s, e: setattr(self, "_name", self._name + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_value", self._value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.items.append(("begin", dict(self.headers))),
            "on_part_data": lambda d, s, e: self.items.append(("data", bytes(d[s:e]))),
            "on_part_end": lambda: self.items.append(("end", None)),
            "on_end": lambda: setattr(self, "ended", True),
        }

    def _header_end(self) -> None:
        self.headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""


async def receive_form(request: Request, store: BlobStore, limit: int) -> ReceivedForm:
    """Read the whole form. Raises UnsupportedMediaTypeError, TooLargeError, InvalidInputError.

    On error every file written so far is removed.
    """
    boundary = _boundary(request)
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + MAX_FIELD_BYTES:
        raise TooLargeError(f"the upload is larger than the limit of {limit // (1024 * 1024)} MB")
    events, form = _Events(), ReceivedForm()
    parser = MultipartParser(boundary, events.callbacks())
    budget = _Budget(limit)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await _drain(events, form, store, budget)
        parser.finalize()
        await _drain(events, form, store, budget)
        if not events.ended:
            raise InvalidInputError("the upload ended before the end of the form (it was cut short); send it again")
        for f in form.files:
            f.sha256 = await f.writer.finish()
    except ClientDisconnect as exc:
        form.discard()
        raise InvalidInputError("the upload was interrupted before it was complete") from exc
    except FormParserError as exc:  # the parser's own errors: the body is not a form
        form.discard()
        raise InvalidInputError("the upload is not valid multipart/form-data; send it again") from exc
    except BaseException:
        form.discard()
        raise
    return form


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit
        self.current: ReceivedFile | None = None
        self.text: bytearray | None = None
        self.text_name = ""
        self.text_left = MAX_TEXT_BYTES


def _boundary(request: Request) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMediaTypeError("send the document as multipart/form-data (fields 'metadata', 'file')")
    boundary = params[b"boundary"]
    if not 0 < len(boundary) <= MAX_BOUNDARY:
        raise UnsupportedMediaTypeError(f"the multipart boundary must be 1 to {MAX_BOUNDARY} characters long "
                                        f"(this one has {len(boundary)})")
    return boundary


async def _drain(events: _Events, form: ReceivedForm, store: BlobStore, b: _Budget) -> None:
    items, events.items = events.items, []
    for kind, value in items:
        if kind == "begin":
            _begin(value, form, store, b)
        elif kind == "data":
            await _data(value, b)
        elif b.current is None and b.text is not None:
            form.fields[b.text_name] = _decode_field(b.text_name, bytes(b.text))
            b.text = None
        else:
            b.current = None


_FILE_FIELDS = frozenset({"file", "attachments"})


def _begin(headers: dict[bytes, bytes], form: ReceivedForm, store: BlobStore, b: _Budget) -> None:
    _, opts = parse_options_header(headers.get(b"content-disposition", b""))
    name = opts.get(b"name", b"").decode("utf-8", "replace")
    if b"filename" in opts:
        filename = opts[b"filename"].decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
        filename = filename or ("document.pdf" if name == "file" else f"attachment-{len(form.files)}")
        try:
            plain_text(filename)
        except ValueError as exc:
            raise InvalidInputError(f"the name of the file in the field {name!r} is not plain text ({exc}); "
                                    "rename the file and send it again") from exc
        if len(filename) > MAX_FILENAME:
            raise InvalidInputError(f"the name of the file in the field {name!r} is {len(filename)} characters long; "
                                    f"rename the file to at most {MAX_FILENAME} characters and send it again")
        ctype = _media_type(headers.get(b"content-type"), filename)
        b.current = ReceivedFile(name, filename, ctype, store.writer(b.limit))
        form.files.append(b.current)
    else:
        if name in _FILE_FIELDS:
            raise InvalidInputError(f"the form field {name!r} must be sent as a file, with its file name "
                                    f"(with curl: -F {name}=@kehoach.pdf, not {name}=<kehoach.pdf)")
        if name in form.fields:
            raise InvalidInputError(f"the form field {name!r} appears twice; send it once")
        b.current, b.text, b.text_name = None, bytearray(), name


def _media_type(header: bytes | None, filename: str) -> str:
    """The part's media type, without parameters; Raises InvalidInputError if it is not one."""
    if header is None:
        return "application/octet-stream"
    ctype, _ = parse_options_header(header)
    if not _MEDIA_TYPE.fullmatch(ctype) or len(ctype) > MAX_MEDIA_TYPE:
        raise InvalidInputError(f"the file {filename} has a Content-Type that is not a media type "
                                f"(such as application/pdf, at most {MAX_MEDIA_TYPE} characters)")
    return ctype.decode("ascii")


async def _data(chunk: bytes, b: _Budget) -> None:
    if b.current is not None:
        b.left -= len(chunk)
        if b.left < 0:
            raise TooLargeError(f"the upload is larger than the limit of {b.limit // (1024 * 1024)} MB")
        await b.current.writer.write(chunk)
    elif b.text is not None:
        b.text += chunk
        b.text_left -= len(chunk)
        if len(b.text) > MAX_FIELD_BYTES:
            raise InvalidInputError(f"the form field {b.text_name!r} is larger than 1 MB")
        if b.text_left < 0:
            raise InvalidInputError(f"the form's text fields are larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB "
                                    "together; send the field 'metadata' and the files, nothing else")


def _decode_field(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the form field {name!r} is not UTF-8 text") from exc


async def read_small_body(request: Request, limit: int, what: str) -> bytes:
    """A body small enough to hold in memory (``what`` names it in the refusal).
    Raises TooLargeError as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"{what} is larger than {_size(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


async def receive_body(request: Request, store: BlobStore, limit: int) -> BlobWriter:
    """Stream a raw request body (a PDF, a PNG) into the store's scratch area.

    Returns the finished writer (``tmp_path``, ``size``, ``sha256``); the caller
    commits or discards it. Raises TooLargeError; on error nothing is left behind.
    """
    writer = store.writer(limit)
    try:
        async for chunk in request.stream():
            await writer.write(chunk)
        writer.sha256 = await writer.finish()
    except BaseException:
        writer.discard()
        raise
    return writer
