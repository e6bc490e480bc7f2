"""CMS assembly without asn1crypto re-serialisation (the signing hot spot).

For a small PDF, most of pyHanko's signing time goes into asn1crypto building
and re-encoding the CMS ``SignedData`` (certificates, names, attributes) and,
with a ``SimpleSigner``, into re-loading the private key for every signature.
:class:`FastCmsSigner` wraps any pyHanko ``Signer`` and produces the *same
bytes* (tests compare them with pyHanko's own output) from DER pieces encoded
once per signer: the certificate set, the signer identifier, the algorithm
identifiers and the signing-certificate-v2 attribute. Only the PAdES baseline
case is taken over (``ETSI.CAdES.detached``, SHA-2, no extra CAdES attributes,
no attribute certificates); everything else is left to pyHanko unchanged.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from asn1crypto import algos, cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign import signers
from pyhanko.sign.general import SigningError, as_signing_certificate_v2
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

__all__ = ["FastCmsSigner", "fast_signer"]

_SHA2 = frozenset({"sha224", "sha256", "sha384", "sha512"})
_OID_CONTENT_TYPE = bytes.fromhex("06092a864886f70d010903")  # 1.2.840.113549.1.9.3
_OID_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")  # 1.2.840.113549.1.9.4
_OID_DATA = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1
_OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2
_CMS_VERSIONS = {"v1": 1, "v3": 3, "v4": 4, "v5": 5}


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length)."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _set_of(encodings: list[bytes]) -> bytes:
    # DER SET OF: elements sorted by their encodings (what asn1crypto does too)
    return _der(0x31, b"".join(sorted(encodings)))


def _digest_algorithm(name: str) -> bytes:
    return _dump(algos.DigestAlgorithm({"algorithm": name}))


def _dump(value: Any) -> bytes:
    der: bytes = value.dump()
    return der


def _retag(encoding: bytes, tag: int) -> bytes:
    """A SET's encoding under an IMPLICIT context tag (same length bytes)."""
    return bytes((tag,)) + encoding[1:]


class FastCmsSigner(signers.Signer):
    """Wraps a pyHanko signer; same CMS output, built from cached DER parts.

    The private key of a ``SimpleSigner`` is loaded once here (pyHanko parses
    it again for every signature); other signers (PKCS#11) sign through the
    wrapped object.
    """

    def __init__(self, inner: signers.Signer) -> None:
        super().__init__(
            prefer_pss=inner.prefer_pss,
            embed_roots=inner.embed_roots,
            signature_mechanism=inner.signature_mechanism,
            signing_cert=inner.signing_cert,
            cert_registry=inner.cert_registry,
            attribute_certs=inner.attribute_certs,
        )
        self.inner = inner
        self._key = _loaded_key(inner)
        self._lock = threading.Lock()
        self._parts: dict[str, bytes] = {}

    # -- raw signature ------------------------------------------------------------
    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)["algorithm"].native
        hash_algo = get_pyca_cryptography_hash(digest_algorithm) if digest_algorithm in _SHA2 else None
        if isinstance(self._key, RSAPrivateKey) and hash_algo and mechanism.endswith("_rsa"):
            return self._key.sign(data, PKCS1v15(), hash_algo)
        if isinstance(self._key, RSAPrivateKey) and hash_algo and mechanism == "rsassa_pkcs1v15":
            return self._key.sign(data, PKCS1v15(), hash_algo)
        if isinstance(self._key, EllipticCurvePrivateKey) and hash_algo and mechanism.endswith("_ecdsa"):
            return self._key.sign(data, ECDSA(hash_algo))
        result: bytes = await self.inner.async_sign_raw(data, digest_algorithm, dry_run)
        return result

    # -- signed attributes ----------------------------------------------------------
    async def signed_attrs(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        attr_settings: Any = None,
        content_type: str = "data",
        use_pades: bool = False,
        timestamper: Any = None,
        dry_run: bool = False,
        is_pdf_sig: bool = True,
    ) -> cms.CMSAttributes:
        plain = attr_settings is None or getattr(attr_settings, "cades_signed_attrs", None) is None
        if not (use_pades and is_pdf_sig and plain and content_type == "data" and self.signed_attr_prov_spec is None):
            return await super().signed_attrs(
                data_digest,
                digest_algorithm,
                attr_settings=attr_settings,
                content_type=content_type,
                use_pades=use_pades,
                timestamper=timestamper,
                dry_run=dry_run,
                is_pdf_sig=is_pdf_sig,
            )
        # PAdES baseline: content-type, message-digest, signing-certificate-v2 only
        attrs = [
            _der(0x30, _OID_CONTENT_TYPE + _der(0x31, _OID_DATA)),
            _der(0x30, _OID_MESSAGE_DIGEST + _der(0x31, _der(0x04, data_digest))),
            self._part("signing_certificate_v2", self._signing_certificate_v2),
        ]
        return cms.CMSAttributes.load(_set_of(attrs))

    # -- packaging ------------------------------------------------------------------
    def _package_signature(
        self,
        *,
        digest_algorithm: str,
        cms_version: str,
        signed_attrs: cms.CMSAttributes,
        signature: bytes,
        unsigned_attrs: cms.CMSAttributes | None,
        encap_content_info: Any,
    ) -> cms.ContentInfo:
        detached_data = encap_content_info in (None, {"content_type": "data"})
        plain = detached_data and digest_algorithm in _SHA2 and cms_version in _CMS_VERSIONS
        if not plain or list(self.attribute_certs):
            return super()._package_signature(
                digest_algorithm=digest_algorithm,
                cms_version=cms_version,
                signed_attrs=signed_attrs,
                signature=signature,
                unsigned_attrs=unsigned_attrs,
                encap_content_info=encap_content_info,
            )
        digest_alg = self._part(f"digest:{digest_algorithm}", lambda: _digest_algorithm(digest_algorithm))
        mechanism = self._part(
            f"mech:{digest_algorithm}", lambda: _dump(self.get_signature_mechanism_for_digest(digest_algorithm))
        )
        signer_info = _der(
            0x30,
            b"".join(
                (
                    b"\x02\x01\x01",  # version v1 (issuerAndSerialNumber)
                    self._part("sid", self._issuer_and_serial),
                    digest_alg,
                    _retag(signed_attrs.dump(), 0xA0),
                    mechanism,
                    _der(0x04, signature),
                    _retag(unsigned_attrs.dump(), 0xA1) if unsigned_attrs is not None else b"",
                )
            ),
        )
        signed_data = _der(
            0x30,
            b"".join(
                (
                    _der(0x02, bytes((_CMS_VERSIONS[cms_version],))),
                    _der(0x31, digest_alg),
                    _der(0x30, _OID_DATA),
                    self._part("certificates", self._certificates),
                    _der(0x31, signer_info),
                )
            ),
        )
        return cms.ContentInfo.load(_der(0x30, _OID_SIGNED_DATA + _der(0xA0, signed_data)))

    # -- cached DER parts ---------------------------------------------------------------
    def _part(self, name: str, build: Callable[[], bytes]) -> bytes:
        part = self._parts.get(name)
        if part is None:
            with self._lock:
                part = self._parts.setdefault(name, build())
        return part

    def _signing_certificate_v2(self) -> bytes:
        value = as_signing_certificate_v2(self._cert())
        return _dump(cms.CMSAttribute({"type": "signing_certificate_v2", "values": (value,)}))

    def _issuer_and_serial(self) -> bytes:
        cert = self._cert()
        return _dump(cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number}))

    def _certificates(self) -> bytes:
        # same selection as pyHanko's Signer._package_signature
        chosen = [c for c in self.cert_registry if self.embed_roots or c.self_signed == "no"]
        encodings = {c.dump() for c in chosen} | {self._cert().dump()}
        return _retag(_set_of(list(encodings)), 0xA0)

    def _cert(self) -> Any:
        if self.signing_cert is None:
            raise SigningError("the signer's certificate is needed to assemble the CMS")
        return self.signing_cert


def _loaded_key(inner: signers.Signer) -> Any:
    if isinstance(inner, signers.SimpleSigner):
        return serialization.load_der_private_key(inner.signing_key.dump(), password=None)
    return None


_CACHE: weakref.WeakKeyDictionary[signers.Signer, FastCmsSigner] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


#: Signer methods whose override in a subclass means "this signer builds its CMS its own way".
_CMS_METHODS = (
    "async_sign",
    "async_sign_prescribed_attributes",
    "signed_attrs",
    "unsigned_attrs",
    "_package_signature",
)


def fast_signer(inner: signers.Signer) -> signers.Signer:
    """The cached :class:`FastCmsSigner` for ``inner`` (one per signer object); ``inner``
    itself when its class customises how the CMS is built."""
    if isinstance(inner, FastCmsSigner):
        return inner
    if any(getattr(type(inner), name) is not getattr(signers.Signer, name) for name in _CMS_METHODS):
        return inner
    with _CACHE_LOCK:
        wrapped = _CACHE.get(inner)
        if wrapped is None:
            wrapped = _CACHE[inner] = FastCmsSigner(inner)
        return wrapped
