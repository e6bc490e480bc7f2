"""Reading signatures out of a PDF without any PDF library, for independent checks."""

from __future__ import annotations

import re

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def byte_range_signatures(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(CMS signature DER, signed bytes) of each signature: the signed bytes are
    ``pdf[a:a+b] + pdf[c:c+d]``; the signature is the hex between them, zero padding removed."""
    out = []
    for m in _BYTE_RANGE.finditer(pdf):
        a, b, c, d = (int(x) for x in m.groups())
        hex_sig = pdf[a + b + 1 : c - 1].rstrip(b"0")
        hex_sig += b"0" * (len(hex_sig) % 2)
        out.append((bytes.fromhex(hex_sig.decode()), pdf[a : a + b] + pdf[c : c + d]))
    return out
