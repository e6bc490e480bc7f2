"""Exact speed-ups for pyHanko/asn1crypto hot spots, installed in verification
worker processes only (``verify._init_worker``); :func:`uninstall` undoes them.

1. pyHanko reads a PDF hex string (``<...>``) one byte per Python call. A
   signature's ``/Contents`` is such a string, 16-64 K hex digits, mostly zero
   padding, so reading it cost as much as the rest of the validation.
   :func:`read_hex_string` reads it in one go and returns the same object; for
   anything unusual (a ``%`` comment inside, a bad digit, no closing ``>``) it
   rewinds and calls pyHanko's own reader, so errors are pyHanko's.
2. asn1crypto compares distinguished names attribute by attribute after RFC
   4518 string preparation (``stringprep``, ~0.2 ms per attribute), once per
   parsed certificate, i.e. again for every file. Name equality, a name's
   ``hashable`` key and the preparation are pure functions of the encodings,
   so bounded memos keyed by the DER bytes return identical results.
3. The same few certificates (signer, CA, TSA) come with every file and were
   parsed again each time, extensions and keys included. Certificates taken
   out of a CMS are replaced by the first parsed object with the same DER
   bytes (neither pyHanko nor certvalidator modifies certificate objects), so
   what asn1crypto caches in them serves the next files.
"""

from __future__ import annotations

import binascii
import functools
import re
from typing import Any, BinaryIO

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.sign.general import SignedDataCerts
from pyhanko.sign.validation import generic_cms

__all__ = ["install", "read_hex_string", "uninstall"]

_ORIGINAL_HEX = generic.read_hex_string_from_stream
_ORIGINAL_PREP = asn1_x509.NameTypeAndValue._ldap_string_prep
_ORIGINAL_NAME_EQ = asn1_x509.Name.__eq__
_ORIGINAL_NAME_HASHABLE = asn1_x509.Name.hashable
# generic_cms imports extract_certificate_info from pyhanko.sign.general and calls it by that name
_ORIGINAL_CERT_INFO = generic_cms.extract_certificate_info  # type: ignore[attr-defined]
_MEMO_LIMIT = 8192
_name_eq_memo: dict[tuple[bytes, bytes], bool] = {}
_hashable_memo: dict[bytes, str] = {}
_certificates: dict[bytes, asn1_x509.Certificate] = {}
_WHITESPACE = b" \n\r\t\f\x00"  # pyhanko.pdf_utils.misc.PDF_WHITESPACE
_PLAIN_HEX = re.compile(rb"[0-9a-fA-F \n\r\t\f\x00]*\Z")
_CHUNK = 1 << 16


def read_hex_string(stream: BinaryIO) -> Any:
    """Drop-in for ``generic.read_hex_string_from_stream`` (stream at the ``<``)."""
    start = stream.tell()
    stream.read(1)
    body = bytearray()
    while (end := body.find(b">")) < 0:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return _hex_fallback(stream, start)
        body += chunk
    digits = bytes(body[:end])
    if not _PLAIN_HEX.match(digits):
        return _hex_fallback(stream, start)
    stream.seek(start + 2 + end)
    digits = digits.translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def _hex_fallback(stream: BinaryIO, start: int) -> Any:
    stream.seek(start)
    return _ORIGINAL_HEX(stream)


@functools.lru_cache(maxsize=8192)
def _prep(value: str) -> str:
    result: str = _ORIGINAL_PREP(None, value)  # the method does not use ``self``
    return result


def _memo_prep(self: Any, value: Any) -> Any:
    return _prep(value) if type(value) is str else _ORIGINAL_PREP(self, value)


def _name_eq(self: asn1_x509.Name, other: object) -> bool:
    if not isinstance(other, asn1_x509.Name):
        return False
    key = (self.dump(), other.dump())
    result = _name_eq_memo.get(key)
    if result is None:
        result = bool(_ORIGINAL_NAME_EQ(self, other))
        _remember(_name_eq_memo, key, result)
    return result


def _name_hashable(self: asn1_x509.Name) -> str:
    key = self.dump()
    result = _hashable_memo.get(key)
    if result is None:
        result = _ORIGINAL_NAME_HASHABLE.fget(self)
        _remember(_hashable_memo, key, result)
    return result


def _certificate_info(signed_data: Any) -> SignedDataCerts:
    info = _ORIGINAL_CERT_INFO(signed_data)
    return SignedDataCerts(
        signer_cert=_shared(info.signer_cert),
        other_certs=[_shared(cert) for cert in info.other_certs],
        attribute_certs=info.attribute_certs,
    )


def _shared(cert: asn1_x509.Certificate) -> asn1_x509.Certificate:
    key = cert.dump()
    known = _certificates.get(key)
    if known is None:
        _remember(_certificates, key, cert)
        return cert
    return known


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def install() -> None:
    """Route the hot spots through the functions above (idempotent)."""
    generic.read_hex_string_from_stream = read_hex_string
    asn1_x509.NameTypeAndValue._ldap_string_prep = _memo_prep
    asn1_x509.Name.__eq__ = _name_eq
    asn1_x509.Name.hashable = property(_name_hashable)
    generic_cms.extract_certificate_info = _certificate_info  # type: ignore[attr-defined]


def uninstall() -> None:
    """Restore pyHanko's and asn1crypto's own functions (used by the tests)."""
    generic.read_hex_string_from_stream = _ORIGINAL_HEX
    asn1_x509.NameTypeAndValue._ldap_string_prep = _ORIGINAL_PREP
    asn1_x509.Name.__eq__ = _ORIGINAL_NAME_EQ
    asn1_x509.Name.hashable = _ORIGINAL_NAME_HASHABLE
    generic_cms.extract_certificate_info = _ORIGINAL_CERT_INFO  # type: ignore[attr-defined]
    for memo in (_name_eq_memo, _hashable_memo, _certificates):
        memo.clear()
    _prep.cache_clear()
