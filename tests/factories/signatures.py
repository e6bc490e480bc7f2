"""Reading signatures out of a PDF without any PDF library, for independent checks."""

from __future__ import annotations

import re

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def byte_range_signatures(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(CMS signature DER, signed bytes) of each signature: the signed bytes are
    ``pdf[a:a+b] + pdf[c:c+d]``; the signature is the hex between them, cut to the length its
    DER header gives (the zero padding after it goes; a signature that itself ends in zero
    bytes keeps them)."""
    out = []
    for m in _BYTE_RANGE.finditer(pdf):
        a, b, c, d = (int(x) for x in m.groups())
        padded = bytes.fromhex(pdf[a + b + 1 : c - 1].decode())
        out.append((padded[: _der_length(padded)], pdf[a : a + b] + pdf[c : c + d]))
    return out


def _der_length(der: bytes) -> int:
    """The length of the DER value that starts ``der``, its tag and length octets included."""
    if der[1] < 0x80:
        return 2 + der[1]
    octets = der[1] & 0x7F
    return 2 + octets + int.from_bytes(der[2 : 2 + octets], "big")
