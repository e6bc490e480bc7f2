"""CRL, OCSP and RFC 3161 answers signed with the development PKI's keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from service.signing._x509 import KeyPair
from service.signing.errors import PkiError

__all__ = ["TSA_POLICY_OID", "Responders", "RevocationEntry"]

# (short OID on purpose: asn1crypto is very slow on huge 2.25.<uuid> arcs)
TSA_POLICY_OID = "0.4.0.2023.1.1"  # ETSI EN 319 421 best-practices-ts-policy
_VALIDITY = timedelta(days=7)
# CertID hashes the OCSP responder answers for (RFC 6960 requires SHA-1 support; MD5 and
# the algorithms cryptography cannot compute are malformed requests, not server errors).
_OCSP_HASHES = (hashes.SHA1, hashes.SHA224, hashes.SHA256, hashes.SHA384, hashes.SHA512)
# Imprints the TSA timestamps, with their lengths: not MD5 or SHA-1, whose collisions
# would let one token vouch for two documents.
_TSA_HASHES = {
    "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64, "sha3_256": 32, "sha3_384": 48, "sha3_512": 64,
}


@dataclass(frozen=True)
class RevocationEntry:
    serial: int
    at: datetime
    reason: x509.ReasonFlags


@dataclass(frozen=True)
class Responders:
    issuing: KeyPair
    root: KeyPair
    tsa: KeyPair
    ocsp: KeyPair

    # -- CRL ------------------------------------------------------------------
    def issuing_crl(self, revoked: list[RevocationEntry], number: int, now: datetime) -> bytes:
        builder = _crl_builder(self.issuing, number, now)
        for entry in revoked:
            item = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.at)
                .add_extension(x509.CRLReason(entry.reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(item)
        return builder.sign(self.issuing.key, hashes.SHA256()).public_bytes(Encoding.DER)

    def root_crl(self, now: datetime, number: int | None = None) -> bytes:
        number = int(now.timestamp()) if number is None else number
        return _crl_builder(self.root, number, now).sign(self.root.key, hashes.SHA256()).public_bytes(Encoding.DER)

    # -- OCSP -----------------------------------------------------------------
    def answer_ocsp(
        self, request_der: bytes, revoked: list[RevocationEntry], now: datetime, known: Container[int] | None = None
    ) -> bytes:
        """A signed OCSP response: ``revoked``, ``good`` for serials in ``known`` (every serial
        when None), ``unknown`` for the others; the request's nonce is echoed. A request that
        cannot be parsed, or hashes its CertID with an algorithm not answered, gets
        malformedRequest; a CertID of another issuer gets unauthorized."""
        try:
            req = ocsp.load_der_ocsp_request(request_der)
            algorithm = req.hash_algorithm
            nonce = _nonce(req)
        except (ValueError, UnsupportedAlgorithm):
            return _ocsp_failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if not isinstance(algorithm, _OCSP_HASHES):
            return _ocsp_failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if req.issuer_key_hash != _key_hash(self.issuing.cert, algorithm):
            return _ocsp_failure(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        found = {entry.serial: entry for entry in revoked}.get(req.serial_number)
        status = ocsp.OCSPCertStatus.GOOD
        if found is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        elif known is not None and req.serial_number not in known:
            status = ocsp.OCSPCertStatus.UNKNOWN
        try:
            builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
                issuer_name_hash=req.issuer_name_hash,
                issuer_key_hash=req.issuer_key_hash,
                serial_number=req.serial_number,
                algorithm=algorithm,
                cert_status=status,
                this_update=now - timedelta(minutes=1),
                next_update=now + _VALIDITY,
                revocation_time=found.at if found else None,
                revocation_reason=found.reason if found else None,
            )
            if nonce is not None:
                builder = builder.add_extension(nonce, critical=False)
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.ocsp.cert).certificates(
                [self.ocsp.cert])
            return builder.sign(self.ocsp.key, hashes.SHA256()).public_bytes(Encoding.DER)
        except ValueError:
            # A CertID no certificate has (a name hash of the wrong length, a negative serial):
            # the request parsed, but no response can hold it.
            return _ocsp_failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)

    # -- RFC 3161 -------------------------------------------------------------
    def answer_timestamp(self, tsq_der: bytes, now: datetime) -> bytes:
        try:
            req = tsp.TimeStampReq.load(tsq_der)
            req.native  # noqa: B018 - forces a full parse so malformed input fails here
        except ValueError as exc:
            return _rejection(f"bad request: {exc}")
        try:
            der: bytes = self.timestamp_response(req, now).dump()
        except _Refused as exc:
            return _rejection(exc.detail, exc.fail_info)
        except PkiError as exc:
            return _rejection(exc.detail)
        return der

    def timestamp_response(self, req: tsp.TimeStampReq, now: datetime) -> tsp.TimeStampResp:
        """The response as an asn1crypto object (freshly built, so pyHanko can embed
        it without asn1crypto re-parsing and re-serialising a loaded token). Raises PkiError
        (for an imprint hashed with a refused algorithm, or whose length does not fit it)."""
        try:
            return self._granted(req, now)
        except (ValueError, TypeError, KeyError) as exc:
            raise PkiError(f"the timestamp request is not valid: {exc}") from exc

    def _granted(self, req: tsp.TimeStampReq, now: datetime) -> tsp.TimeStampResp:
        imprint = req["message_imprint"]
        md_name = imprint["hash_algorithm"]["algorithm"].native
        if md_name not in _TSA_HASHES:
            raise _Refused(f"hash algorithm {md_name} is not accepted", "bad_alg")
        if len(imprint["hashed_message"].native) != _TSA_HASHES[md_name]:
            raise _Refused(f"the imprint is not a {md_name} digest (wrong length)", "bad_data_format")
        token = self._token(req, md_name, now.replace(microsecond=0))
        status = tsp.PKIStatusInfo({"status": "granted"})
        return tsp.TimeStampResp({"status": status, "time_stamp_token": token})

    def _token(self, req: tsp.TimeStampReq, md_name: str, now: datetime) -> cms.ContentInfo:
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": TSA_POLICY_OID,
                "message_imprint": req["message_imprint"],
                "serial_number": secrets.randbits(64),
                "gen_time": now,
                "accuracy": {"seconds": 1},
                "tsa": asn1_x509.GeneralName(name="directory_name", value=self._tsa_cert().subject),
                **({"nonce": req["nonce"]} if req["nonce"].native is not None else {}),
            }
        )
        content = tst_info.dump()
        attrs = self._signed_attrs(content, now)
        signature = self.tsa.key.sign(attrs.dump(), PKCS1v15(), hashes.SHA256())
        return cms.ContentInfo({"content_type": "signed_data", "content": self._signed_data(content, attrs, signature)})

    def _signed_attrs(self, content: bytes, now: datetime) -> cms.CMSAttributes:
        cert = self._tsa_cert()
        ess_cert = tsp.ESSCertIDv2({"hash_algorithm": {"algorithm": "sha256"}, "cert_hash": cert.sha256})
        return cms.CMSAttributes(
            [
                _attr("content_type", "tst_info"),
                _attr("signing_time", cms.Time({"utc_time": core.UTCTime(now)})),
                _attr("message_digest", hashlib.sha256(content).digest()),
                _attr("signing_certificate_v2", tsp.SigningCertificateV2({"certs": [ess_cert]})),
            ]
        )

    def _signed_data(self, content: bytes, attrs: cms.CMSAttributes, signature: bytes) -> cms.SignedData:
        cert = self._tsa_cert()
        digest_alg = algos.DigestAlgorithm({"algorithm": "sha256"})
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
                ),
                "digest_algorithm": digest_alg,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
                "signed_attrs": attrs,
                "signature": signature,
            }
        )
        issuing = asn1_x509.Certificate.load(self.issuing.cert.public_bytes(Encoding.DER))
        return cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [digest_alg],
                "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(content)},
                "certificates": [cert, issuing],
                "signer_infos": [signer_info],
            }
        )

    def _tsa_cert(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.tsa.cert.public_bytes(Encoding.DER))


def _attr(name: str, value: object) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": name, "values": (value,)})


class _StatusOnly(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    """A TimeStampResp without its token, as RFC 3161 answers a refused request
    (asn1crypto's TimeStampResp cannot be built without one)."""

    _fields = [("status", tsp.PKIStatusInfo)]


class _Refused(PkiError):
    """A well-formed timestamp request the TSA will not grant (``fail_info``: a PKIFailureInfo bit)."""

    def __init__(self, detail: str, fail_info: str) -> None:
        super().__init__(detail)
        self.fail_info = fail_info


def _rejection(text: str, fail_info: str = "bad_data_format") -> bytes:
    status = tsp.PKIStatusInfo(
        {"status": "rejection", "status_string": [text[:200]], "fail_info": tsp.PKIFailureInfo({fail_info})}
    )
    der: bytes = _StatusOnly({"status": status}).dump()
    return der


def _nonce(req: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    """The request's nonce extension (RFC 8954), to echo. Raises ValueError if malformed."""
    try:
        return req.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None


def _ocsp_failure(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def _crl_builder(issuer: KeyPair, number: int, now: datetime) -> x509.CertificateRevocationListBuilder:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + _VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    spki = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    if isinstance(algorithm, hashes.SHA1):
        return spki
    from cryptography.hazmat.primitives.serialization import PublicFormat

    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    bit_string = asn1_x509.PublicKeyInfo.load(der)["public_key"].contents[1:]
    digest = hashes.Hash(algorithm)
    digest.update(bit_string)
    return digest.finalize()

