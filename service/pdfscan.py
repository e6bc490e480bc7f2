"""What one pass over a PDF's bytes tells about its signatures, before any parsing.

A signature's ``/Contents`` must lie uncompressed between its byte ranges, so a file
with no literal ``/ByteRange`` holds no signature value at all and its report needs no
PDF parser. The counts are taken while the bytes stream by: as an upload is written
(``BlobWriter``), or by reading a stored file again (``scan_file``).

The markers are looked for with the C library's ``memmem``, called through ctypes. A
ctypes call releases the GIL, so an upload's scan on a writer thread runs beside the
event loop instead of holding it up; and ``memmem`` is faster than Python's ``re`` or
``bytes.find`` on PDF content (docs/performance.md). Where the C library has no
``memmem``, ``bytes.find`` finds the same markers, holding the GIL.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scan", "Scanner", "scan_file"]

_BYTE_RANGE = b"/ByteRange"  # a signature value's byte ranges
_SIG = b"/Sig"  # counted when it is the value of a /FT key: a signature field
_FIELD_TYPE = b"/FT"
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE = b"\x00\t\n\x0c\r "  # PDF white-space characters (ISO 32000-1, 7.2.2)
# Kept from the previous block: a marker cut by a block's end is found in the seam, and a
# /Sig near a block's start sees the /FT before it. /FT and the white space between the
# two must fit in it.
_TAIL = 64

_Finder = Callable[[bytes, bytes], Iterator[int]]


@dataclass(frozen=True, slots=True)
class Scan:
    sha256: str
    byte_ranges: int  # literal /ByteRange keys: 0 means no signature value anywhere
    sig_fields: int  # /FT /Sig field types


class Scanner:
    """SHA-256 and marker counts over consecutive blocks; a marker cut by a block's end
    counts once. A marker that ends a block counts whatever the next block starts with."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._tail = b""
        self.byte_ranges = 0
        self.sig_fields = 0

    def update(self, block: bytes) -> None:
        if not block:
            return
        if type(block) is not bytes:
            block = bytes(block)
        self._hash.update(block)
        if self._tail:
            # Only the markers that start in the previous block and end in this one.
            self._count(self._tail + block[:_TAIL], b"", cut=len(self._tail))
        self._count(block, self._tail)
        self._tail = (self._tail + block)[-_TAIL:] if len(block) < _TAIL else block[-_TAIL:]

    def _count(self, buf: bytes, before: bytes, cut: int = 0) -> None:
        """Count the markers in ``buf``; with ``cut``, only those that cross it.
        ``before``: the bytes that precede ``buf``, where a /FT may be."""
        for at in _find(buf, _BYTE_RANGE):
            if _whole(buf, at, _BYTE_RANGE, cut):
                self.byte_ranges += 1
        for at in _find(buf, _SIG):
            if _whole(buf, at, _SIG, cut) and _after_field_type(buf, at, before):
                self.sig_fields += 1

    def result(self) -> Scan:
        return Scan(self._hash.hexdigest(), self.byte_ranges, self.sig_fields)


def _whole(buf: bytes, at: int, marker: bytes, cut: int) -> bool:
    """The marker at ``at`` is a whole name (not the start of a longer one) and, with a
    ``cut``, crosses it."""
    end = at + len(marker)
    if cut and not at < cut < end:
        return False
    return end == len(buf) or buf[end] not in _WORD


def _after_field_type(buf: bytes, at: int, before: bytes) -> bool:
    lead = buf[max(0, at - _TAIL):at]
    if len(lead) < _TAIL and before:
        lead = before[len(lead) - _TAIL:] + lead
    return lead.rstrip(_SPACE).endswith(_FIELD_TYPE)


def _python_find(buf: bytes, marker: bytes) -> Iterator[int]:
    at = buf.find(marker)
    while at >= 0:
        yield at
        at = buf.find(marker, at + 1)


def _c_finder() -> _Finder | None:
    try:
        memmem = ctypes.CDLL(None).memmem
    except (OSError, AttributeError, TypeError):  # no C library symbols here (e.g. Windows)
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)

    def find(buf: bytes, marker: bytes) -> Iterator[int]:
        # c_char_p of a bytes object points into it, without a copy; buf outlives the calls.
        start = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
        size, width, at = len(buf), len(marker), 0
        while size - at >= width:
            found = memmem(start + at, size - at, marker, width)
            if not found:
                return
            yield found - start
            at = found - start + 1

    return find


_find: _Finder = _c_finder() or _python_find


def scan_file(path: Path, chunk: int = 1024 * 1024) -> Scan:
    """Blocking: read ``path`` once (call it off the event loop)."""
    scanner = Scanner()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            scanner.update(block)
    return scanner.result()
