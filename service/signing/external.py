"""Two-step (external) signing: the private key stays on the signer's USB token.

1. :func:`prepare_external` writes the document with its signature field,
   appearance and an empty ``/Contents`` placeholder next to the destination
   (``.<dst>.prepared``), computes the ``/ByteRange`` digest and the CMS signed
   attributes, and returns what the client must sign plus an opaque ``state``.
2. The client signs the DER of the signed attributes (RSASSA-PKCS1-v1_5 or
   ECDSA with SHA-256) on its token and sends the signature value back.
3. :func:`complete_external` checks the value against the certificate, builds
   the CMS (adding the RFC 3161 timestamp for B-T), fills the placeholder,
   moves the file to its destination and verifies it with the project's
   verifier before returning.

``state`` is JSON (bytes) holding paths, digests and DER as hex/base64: store
it server-side (database) between the two HTTP requests, never hand it to the
client — it names server paths.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from service.signing.appearance import FontConfig, image_style, make_signature_png
from service.signing.errors import ExternalSigningError, SignatureCreationError
from service.signing.pades import (
    SIGNING_FAILURES,
    Placement,
    SignatureLevel,
    SigningOptions,
    SignResult,
    TimedPdfSigner,
    file_sha256,
    metadata,
    now_vn,
    signing_failure,
)
from service.signing.report import Verdict
from service.signing.service import check_personal_placement
from service.signing.trust import TrustConfig
from service.signing.verify import Verifier, verify_pdf

__all__ = ["PreparedSignature", "complete_external", "prepare_external"]

_STATE_VERSION = 1
_MD = "sha256"
_PERSONAL_FIELD = "Sig-Personal"
_OPTIONS = SigningOptions()  # frozen: safe as a shared default
_FONTS = FontConfig()


@dataclass(frozen=True)
class PreparedSignature:
    """What :func:`prepare_external` hands back.

    ``to_be_signed`` is the DER of the CMS signed attributes (the exact bytes
    the token signs); ``digest`` is its SHA-256 (for tokens that sign a
    pre-computed hash). ``state`` is for the server only.
    """

    to_be_signed: bytes
    digest: bytes
    signature_algorithm: str  # "rsassa-pkcs1v15-sha256" | "ecdsa-sha256"
    field_name: str
    signed_at: datetime  # Vietnam time (+07:00)
    state: bytes

    def client_request(self) -> dict[str, str]:
        """JSON-able payload for the signer's PC (no server paths)."""
        return {
            "to_be_signed": base64.b64encode(self.to_be_signed).decode(),
            "digest": base64.b64encode(self.digest).decode(),
            "digest_algorithm": _MD,
            "signature_algorithm": self.signature_algorithm,
            "field_name": self.field_name,
            "signed_at": self.signed_at.isoformat(),
        }


# -- step 1 -----------------------------------------------------------------------------
async def prepare_external(
    src_path: Path,
    *,
    placement: Placement,
    signer_name: str,
    cert_der: bytes,
    chain_der: list[bytes] | tuple[bytes, ...] = (),
    image_png: bytes | None = None,
    options: SigningOptions = _OPTIONS,
    dst: Path | None = None,
    fonts: FontConfig = _FONTS,
) -> PreparedSignature:
    """Prepare a visible personal signature (approval, like ``sign_personal``)
    for a key held by the client. ``dst`` defaults to ``<src>.signed.pdf``.

    Raises ExternalSigningError (bad certificate, unsupported level), SignatureCreationError (unreadable PDF).
    """
    if options.level not in (SignatureLevel.B_B, SignatureLevel.B_T):
        raise ExternalSigningError(f"external signing supports B-B and B-T, not {options.level}")
    cert, chain = _load_certs(cert_der, chain_der)
    _signature_algorithm(cert)  # refuse unsupported key types before any work
    dst = dst or src_path.with_name(f"{src_path.stem}.signed.pdf")
    # The same placement rules as a signature made here (service.signing.service.personal_box).
    box = await asyncio.to_thread(check_personal_placement, src_path, placement)
    name = placement.field_name or _PERSONAL_FIELD
    # pyHanko annotates ``box`` as ints but writes any PDF number; our boxes are in (fractional) points.
    spec = None if box is None else fields.SigFieldSpec(name, on_page=placement.page, box=box)  # type: ignore[arg-type]
    png = image_png or make_signature_png(signer_name, fonts)
    meta = metadata(name, options, None, name=unicodedata.normalize("NFC", signer_name))
    signed_at = now_vn()
    job = _PrepareJob(src_path, _prepared_path(dst), meta, spec, png, cert, chain, signed_at, options.bytes_reserved)
    prepared, attrs = await asyncio.to_thread(lambda: asyncio.run(_prepare(job)))
    state = {
        "v": _STATE_VERSION,
        "prepared": str(job.prepared),
        "prepared_sha256": await asyncio.to_thread(file_sha256, job.prepared),
        "output": str(dst),
        "region": [prepared.reserved_region_start, prepared.reserved_region_end],
        "document_digest": prepared.document_digest.hex(),
        "signed_attrs": base64.b64encode(attrs).decode(),
        "cert": base64.b64encode(cert.dump()).decode(),
        "field": name,
        "signed_at": signed_at.isoformat(),
        "level": str(options.level),
    }
    return PreparedSignature(
        to_be_signed=attrs,
        digest=_sha256(attrs),
        signature_algorithm=_signature_algorithm(cert),
        field_name=name,
        signed_at=signed_at,
        state=json.dumps(state).encode(),
    )


@dataclass(frozen=True)
class _PrepareJob:
    src: Path
    prepared: Path
    meta: signers.PdfSignatureMetadata
    spec: fields.SigFieldSpec | None
    png: bytes
    cert: asn1_x509.Certificate
    chain: list[asn1_x509.Certificate]
    signed_at: datetime
    bytes_reserved: int


async def _prepare(job: _PrepareJob) -> tuple[PreparedByteRangeDigest, bytes]:
    ext = _external_signer(job.cert, job.chain, None)
    pdf_signer = TimedPdfSigner(
        job.meta, ext, stamp_style=image_style(job.png), new_field_spec=job.spec, signed_at=job.signed_at
    )
    try:
        with open(job.src, "rb") as inf, open(job.prepared, "w+b") as outf:
            writer = IncrementalPdfFileWriter(inf, strict=False)
            prepared, _, _ = await pdf_signer.async_digest_doc_for_signing(
                writer, bytes_reserved=job.bytes_reserved, output=outf
            )
        attrs = await ext.signed_attrs(
            prepared.document_digest,
            _MD,
            attr_settings=PdfCMSSignedAttributes(
                signing_time=job.signed_at, cades_signed_attrs=job.meta.cades_signed_attr_spec
            ),
            use_pades=True,
        )
    except SIGNING_FAILURES as exc:
        job.prepared.unlink(missing_ok=True)
        # The document's problem, not the token's: the same refusal as a signature made here.
        raise SignatureCreationError(signing_failure(exc)) from exc
    return prepared, attrs.dump()


# -- step 2 -----------------------------------------------------------------------------
async def complete_external(
    state: bytes,
    signature_value: bytes,
    cert_chain_der: list[bytes],
    *,
    trust: TrustConfig,
    timestamper: TimeStamper | None = None,
    verifier: Verifier | None = None,
) -> SignResult:
    """Embed the client's signature, write the signed PDF, verify it.

    ``cert_chain_der``: the signing certificate first (must be the one given to
    :func:`prepare_external`), then its chain. ``timestamper`` is required for B-T.
    Raises ExternalSigningError when the value does not verify against the
    certificate, the prepared file is gone or changed, or the result does not
    verify as passed (the prepared file is then kept, so a retry is possible).
    """
    st = _parse_state(state)
    if not cert_chain_der:
        raise ExternalSigningError("the signing certificate is missing")
    cert, chain = _load_certs(cert_chain_der[0], cert_chain_der[1:])
    if cert.dump() != base64.b64decode(st["cert"]):
        raise ExternalSigningError("the certificate differs from the one the signature was prepared for")
    attrs_der = base64.b64decode(st["signed_attrs"])
    _check_signature_value(cert, attrs_der, signature_value)
    if st["level"] == SignatureLevel.B_T and timestamper is None:
        raise ExternalSigningError("level B-T needs a timestamper")
    prepared, output = Path(st["prepared"]), Path(st["output"])
    if not prepared.exists() or await asyncio.to_thread(file_sha256, prepared) != st["prepared_sha256"]:
        raise ExternalSigningError("the prepared document is missing or was changed (already completed?)")
    ts = timestamper if st["level"] == SignatureLevel.B_T else None
    signature_cms = await _build_cms(cert, chain, signature_value, attrs_der, ts)
    digest = PreparedByteRangeDigest(bytes.fromhex(st["document_digest"]), *st["region"])
    await asyncio.to_thread(_fill, prepared, digest, signature_cms)
    await _verify_or_restore(prepared, digest, trust, verifier)
    await asyncio.to_thread(_move_out, prepared, output)
    return SignResult(
        field_name=st["field"],
        signer_subject=cert.subject.human_friendly,
        signed_at=datetime.fromisoformat(st["signed_at"]).astimezone(UTC),
        level=SignatureLevel(st["level"]),
        sha256=await asyncio.to_thread(file_sha256, output),
        output=output,
    )


async def _build_cms(
    cert: asn1_x509.Certificate,
    chain: list[asn1_x509.Certificate],
    value: bytes,
    attrs_der: bytes,
    ts: TimeStamper | None,
) -> cms.ContentInfo:
    ext = _external_signer(cert, chain, value)
    try:
        return await ext.async_sign_prescribed_attributes(_MD, cms.CMSAttributes.load(attrs_der), timestamper=ts)
    except (PyhankoSigningError, ValueError, OSError) as exc:
        raise ExternalSigningError(f"cannot build the CMS signature: {exc}") from exc


def _fill(prepared: Path, digest: PreparedByteRangeDigest, signature_cms: cms.ContentInfo) -> None:
    try:
        with open(prepared, "r+b") as fh:
            digest.fill_with_cms(fh, signature_cms)
    except (PdfError, PyhankoSigningError, OSError, ValueError) as exc:
        raise ExternalSigningError(f"the signature does not fit in the reserved space: {exc}") from exc


async def _verify_or_restore(
    prepared: Path, digest: PreparedByteRangeDigest, trust: TrustConfig, verifier: Verifier | None
) -> None:
    report = await verifier.verify(prepared) if verifier else await verify_pdf(prepared, trust)
    if report.verdict is Verdict.PASSED:
        return
    await asyncio.to_thread(_blank, prepared, digest)
    codes = [f.code for s in report.signatures for f in s.findings] + [f.code for f in report.findings]
    raise ExternalSigningError(f"the signed document does not verify ({report.verdict}: {', '.join(codes)})")


def _blank(prepared: Path, digest: PreparedByteRangeDigest) -> None:
    """Put the zero placeholder back so the state stays valid for a retry."""
    start, end = digest.reserved_region_start, digest.reserved_region_end
    try:
        with open(prepared, "r+b") as fh:
            fh.seek(start + 1)
            fh.write(b"0" * (end - start - 2))
    except FileNotFoundError:
        pass  # removed meanwhile (the session expired and was swept): no retry to keep valid


def _move_out(prepared: Path, output: Path) -> None:
    # The caller lets one completion at a time use a state; this only keeps a vanished
    # file from becoming a server error.
    try:
        os.replace(prepared, output)
    except FileNotFoundError as exc:
        raise ExternalSigningError("the prepared document is missing (already completed?)") from exc


# -- helpers ----------------------------------------------------------------------------
def _prepared_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.prepared")


def _external_signer(
    cert: asn1_x509.Certificate, chain: list[asn1_x509.Certificate], value: bytes | None
) -> signers.ExternalSigner:
    size = cert.public_key.byte_size if cert.public_key.algorithm == "rsa" else 72
    return signers.ExternalSigner(
        signing_cert=cert,
        cert_registry=SimpleCertificateStore.from_certs([cert, *chain]),
        signature_value=value if value is not None else size,
    )


def _load_certs(
    cert_der: bytes, chain_der: list[bytes] | tuple[bytes, ...]
) -> tuple[asn1_x509.Certificate, list[asn1_x509.Certificate]]:
    try:
        cert = asn1_x509.Certificate.load(bytes(cert_der))
        cert.native  # noqa: B018 - force a full parse: asn1crypto parses lazily
        chain = [asn1_x509.Certificate.load(bytes(der)) for der in chain_der]
        for item in chain:
            item.native  # noqa: B018
    except Exception as exc:  # noqa: BLE001 - damaged DER fails asn1crypto in many ways (AttributeError too)
        raise ExternalSigningError(f"not a DER certificate: {exc}") from exc
    return cert, chain


def _signature_algorithm(cert: asn1_x509.Certificate) -> str:
    algo = cert.public_key.algorithm
    if algo == "rsa":
        return "rsassa-pkcs1v15-sha256"
    if algo == "ec":
        return "ecdsa-sha256"
    raise ExternalSigningError(f"unsupported key type {algo!r} (RSA or EC only)")


def _check_signature_value(cert: asn1_x509.Certificate, data: bytes, value: bytes) -> None:
    key = pyca_x509.load_der_x509_certificate(cert.dump()).public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(value, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise ExternalSigningError("unsupported key type (RSA or EC only)")
    except InvalidSignature as exc:
        raise ExternalSigningError(
            "the signature value does not match the certificate (wrong key, wrong data or wrong algorithm)"
        ) from exc


def _parse_state(state: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(state)
    except (ValueError, TypeError) as exc:
        raise ExternalSigningError("the signing state is not valid JSON") from exc
    if not isinstance(data, dict) or data.get("v") != _STATE_VERSION:
        raise ExternalSigningError("unknown signing state version")
    return data


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()
