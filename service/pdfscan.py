"""What one pass over a PDF's bytes tells about its signatures, before any parsing.

A signature's ``/Contents`` must lie uncompressed between its byte ranges, so a file
with no literal ``/ByteRange`` holds no signature value at all and its report needs no
PDF parser. The counts are taken while the bytes stream by: as an upload is written
(``BlobWriter``), or by reading a stored file again (``scan_file``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scan", "Scanner", "scan_file"]

# Both markers in one pass over the bytes: group 1 is set for a /ByteRange key, else it
# is a signature field type (/FT /Sig).
_MARKERS = re.compile(rb"/(?:(ByteRange)\b|FT\s*/Sig\b)")
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
        self._count(_MARKERS.finditer(block))
        # Those that start in the previous block's tail and end in this one.
        self._count(m for m in _MARKERS.finditer(seam) if m.start() < cut < m.end())
        self._tail = (self._tail + block)[-_OVERLAP:] if len(block) < _OVERLAP else block[-_OVERLAP:]

    def _count(self, matches: Iterator[re.Match[bytes]]) -> None:
        for m in matches:
            if m.group(1):
                self.byte_ranges += 1
            else:
                self.sig_fields += 1

    def result(self) -> Scan:
        return Scan(self._hash.hexdigest(), self.byte_ranges, self.sig_fields)


def scan_file(path: Path, chunk: int = 1024 * 1024) -> Scan:
    """Blocking: read ``path`` once (call it off the event loop)."""
    scanner = Scanner()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            scanner.update(block)
    return scanner.result()
