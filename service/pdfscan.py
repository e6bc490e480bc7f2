"""What one pass over a PDF's bytes tells about its signatures, before any parsing.

A signature's ``/Contents`` must lie uncompressed between its byte ranges, so a file
with no literal ``/ByteRange`` holds no signature value at all and its report needs no
PDF parser. The counts are taken while the bytes stream by: as an upload is written
(``BlobWriter``), or by reading a stored file again (``scan_file``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scan", "Scanner", "scan_file"]

_BYTERANGE = re.compile(rb"/ByteRange\b")
_SIG_FIELD = re.compile(rb"/FT\s*/Sig\b")
_OVERLAP = 64  # longer than any marker: one split across two blocks is seen in the seam


@dataclass(frozen=True, slots=True)
class Scan:
    sha256: str
    byte_ranges: int  # literal /ByteRange keys: 0 means no signature value anywhere
    sig_fields: int  # /FT /Sig field types


class Scanner:
    """SHA-256 and marker counts over consecutive blocks; a marker split across two
    blocks counts once."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._tail = b""
        self.byte_ranges = 0
        self.sig_fields = 0

    def update(self, block: bytes) -> None:
        if not block:
            return
        self._hash.update(block)
        seam, cut = self._tail + block[:_OVERLAP], len(self._tail)
        self.byte_ranges += _count(_BYTERANGE, block, seam, cut)
        self.sig_fields += _count(_SIG_FIELD, block, seam, cut)
        self._tail = (self._tail + block)[-_OVERLAP:] if len(block) < _OVERLAP else block[-_OVERLAP:]

    def result(self) -> Scan:
        return Scan(self._hash.hexdigest(), self.byte_ranges, self.sig_fields)


def _count(pattern: re.Pattern[bytes], block: bytes, seam: bytes, cut: int) -> int:
    """Matches inside ``block``, plus those that start before ``cut`` in the seam (the
    previous block's tail followed by this block's head) and end after it."""
    inside = sum(1 for _ in pattern.finditer(block))
    return inside + sum(1 for m in pattern.finditer(seam) if m.start() < cut < m.end())


def scan_file(path: Path, chunk: int = 1024 * 1024) -> Scan:
    """Blocking: read ``path`` once (call it off the event loop)."""
    scanner = Scanner()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            scanner.update(block)
    return scanner.result()
