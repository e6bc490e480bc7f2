"""Count signatures ourselves, without pyHanko (a library may silently drop
signatures it does not recognise, or stop enumerating after a bad one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RawCounts", "count_signatures"]

_OBJ = re.compile(rb"(?<!\d)(\d+)\s+(\d+)\s+obj\b")  # no backtracking inside digit runs
_FT_SIG = re.compile(rb"/FT\s*/Sig\b")
_BYTERANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


@dataclass(frozen=True)
class RawCounts:
    byte_ranges: int  # distinct /ByteRange arrays = signature values present
    sig_fields: int  # distinct objects declaring /FT /Sig (filled or empty)


def count_signatures(path: Path) -> RawCounts:
    data = path.read_bytes()
    ranges = {m.groups() for m in _BYTERANGE.finditer(data)}
    objects = [(m.start(), m.group(1)) for m in _OBJ.finditer(data)]
    owners: set[bytes] = set()
    index = 0
    for hit in _FT_SIG.finditer(data):
        while index + 1 < len(objects) and objects[index + 1][0] < hit.start():
            index += 1
        owners.add(objects[index][1] if objects and objects[index][0] < hit.start() else b"?")
    return RawCounts(byte_ranges=len(ranges), sig_fields=len(owners))
