"""PAdES signing: personal signature, organisation seal, attachment seal.

Every function streams: the input is read through pyHanko's incremental
writer and the output goes straight to a file, never to an in-memory copy.
The pyHanko coroutine runs in a worker thread (hashing a 300 MB file must not
block the event loop).

Speed: the placeholder size is fixed (``bytes_reserved``: no dry-run signature),
and the CMS is assembled by :func:`service.signing._fastcms.fast_signer` from DER
parts encoded once per signer, with the private key kept loaded (pyHanko's
``SimpleSigner`` re-parses it for every signature). See docs/signing.md, Performance.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from zoneinfo import ZoneInfo

from asn1crypto import tsp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import BaseStampStyle
from pyhanko_certvalidator import ValidationContext

from service.signing._fastcms import fast_signer
from service.signing._pdfinfo import (
    DAMAGED_PDF_ERRORS,
    check_field_tree,
    field_geometry,
    locking_field,
    page_count,
    page_size,
    signature_fields,
)
from service.signing.errors import SignatureCreationError, SigningError
from service.signing.trust import TrustConfig

__all__ = [
    "VN_TZ",
    "ENCRYPTED",
    "InProcessTimeStamper",
    "PdfLayout",
    "Placement",
    "SignResult",
    "SignatureLevel",
    "SigningOptions",
    "build_timestamper",
    "TimedPdfSigner",
    "file_sha256",
    "inspect_layout",
    "run_signing",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Box = tuple[float, float, float, float]
T = TypeVar("T")
#: DER bytes reserved for the CMS: 3-cert RSA chain + signature + TSA token with
#: its own chain, with margin (PKCS#11 + TSA + stamp needs generous room).
DEFAULT_BYTES_RESERVED = 16 * 1024
#: Read/hash a big input in 1 MiB steps rather than pyHanko's 4 KiB (memory stays flat).
_IO_CHUNK = 1 << 20


class SignatureLevel(StrEnum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


@dataclass(frozen=True)
class Placement:
    """Where a visible signature goes: an existing empty field, or page + box (PDF points)."""

    page: int = 0
    box: Box | None = None
    field_name: str | None = None


@dataclass(frozen=True)
class SigningOptions:
    level: SignatureLevel = SignatureLevel.B_T
    reason: str | None = None
    location: str | None = None
    bytes_reserved: int = DEFAULT_BYTES_RESERVED


@dataclass(frozen=True)
class SignResult:
    """What a signing call produced."""

    field_name: str
    signer_subject: str
    signed_at: datetime  # UTC
    level: SignatureLevel
    sha256: str
    output: Path


TsaFunction = Callable[[tsp.TimeStampReq], tsp.TimeStampResp]


class InProcessTimeStamper(TimeStamper):
    """RFC 3161 client that calls a TSA function directly (no HTTP)."""

    def __init__(self, answer: TsaFunction) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]  # pyHanko leaves it unannotated
        self._answer = answer

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self._answer(req)


def build_timestamper(trust: TrustConfig, answer: TsaFunction | None = None) -> TimeStamper | None:
    """The TSA client to reuse for every signature: HTTP when ``trust.tsa_url`` is
    set, else in-process via ``answer`` (e.g. ``DevelopmentPki.timestamp_response``)."""
    if trust.tsa_url:
        from pyhanko.sign.timestamps import HTTPTimeStamper
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

        # The HTTP session opens on the first request, inside the running event loop.
        return HTTPTimeStamper(trust.tsa_url, session=LazySession(), timeout=30)
    return InProcessTimeStamper(answer) if answer else None


class TimedPdfSigner(signers.PdfSigner):
    """PdfSigner whose signing time we choose, so the appearance text and the
    CMS signing-time attribute agree to the second and are shown in +07:00."""

    def __init__(self, *args: Any, signed_at: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signed_at = signed_at

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self._signed_at
        return session


@dataclass(frozen=True)
class SignJob:
    """Everything one signature needs, assembled by the public functions."""

    meta: signers.PdfSignatureMetadata
    signer: signers.Signer
    timestamper: TimeStamper | None
    style: BaseStampStyle | None
    field_spec: fields.SigFieldSpec | None
    text_params: dict[str, str]
    options: SigningOptions
    signed_at: datetime

    @classmethod
    def invisible(cls, field_name: str, signer: signers.Signer, options: SigningOptions,
                  trust: TrustConfig | None = None, timestamper: TimeStamper | None = None) -> SignJob:
        """A signature with no appearance in a new field, signed now."""
        return cls(meta=metadata(field_name, options, trust), signer=signer, timestamper=timestamper, style=None,
                   field_spec=None, text_params={}, options=options, signed_at=now_vn())


def now_vn() -> datetime:
    return datetime.now(VN_TZ).replace(microsecond=0)


def validation_context(trust: TrustConfig) -> ValidationContext:
    """Offline context: only the roots and revocation data the trust config holds."""
    return ValidationContext(
        trust_roots=trust.roots(),
        other_certs=trust.intermediates(),
        crls=list(trust.crls_der),
        ocsps=list(trust.ocsps_der),
        allow_fetching=False,
        revocation_mode=trust.revocation_mode,
    )


def metadata(
    field_name: str, options: SigningOptions, trust: TrustConfig | None, **extra: Any
) -> signers.PdfSignatureMetadata:
    long_term = options.level in (SignatureLevel.B_LT, SignatureLevel.B_LTA)
    if long_term and trust is None:
        raise SigningError(f"level {options.level} needs a trust configuration for revocation data")
    return signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=options.reason,
        location=options.location,
        embed_validation_info=long_term,
        use_pades_lta=options.level is SignatureLevel.B_LTA,
        validation_context=validation_context(trust) if long_term and trust else None,
        **extra,
    )


async def run_signing(src: Path | BinaryIO, dst: Path, job: SignJob) -> SignResult:
    """Sign ``src`` into ``dst`` in a worker thread. Raises SignatureCreationError."""
    await offload(_sign_file, src, dst, job)
    digest = await asyncio.to_thread(file_sha256, dst)
    subject = job.signer.signing_cert.subject.human_friendly if job.signer.signing_cert else ""
    return SignResult(
        field_name=job.meta.field_name or "",
        signer_subject=subject,
        signed_at=job.signed_at.astimezone(UTC),
        level=job.options.level,
        sha256=digest,
        output=dst,
    )


async def offload(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run a pyHanko coroutine on a private loop in a worker thread."""
    return await asyncio.to_thread(lambda: asyncio.run(fn(*args)))


# What signing a document can fail with, besides a bug: a damaged PDF, pyHanko's refusal, the disk.
SIGNING_FAILURES: tuple[type[Exception], ...] = (*DAMAGED_PDF_ERRORS, PyhankoSigningError, OSError)


async def _sign_file(src: Path | BinaryIO, dst: Path, job: SignJob) -> None:
    pdf_signer = TimedPdfSigner(
        job.meta,
        fast_signer(job.signer),
        timestamper=job.timestamper,
        stamp_style=job.style,
        new_field_spec=job.field_spec,
        signed_at=job.signed_at,
    )
    try:
        with _open_input(src) as inf, open(dst, "w+b") as outf:
            writer = IncrementalPdfFileWriter(inf, strict=False)
            writer.IO_CHUNK_SIZE = _IO_CHUNK  # copying the input (pyHanko's default: 4 KiB)
            await pdf_signer.async_sign_pdf(
                writer,
                output=outf,
                bytes_reserved=job.options.bytes_reserved,
                appearance_text_params=job.text_params or None,
                chunk_size=_IO_CHUNK,
            )
    except SIGNING_FAILURES as exc:
        dst.unlink(missing_ok=True)
        raise SignatureCreationError(signing_failure(exc)) from exc


def signing_failure(exc: Exception) -> str:
    """What to tell the clerk when signing failed with one of SIGNING_FAILURES."""
    if isinstance(exc, PyhankoSigningError):
        return f"signing failed: {exc}"
    if isinstance(exc, OSError):  # its str() would name a path inside the store
        return f"signing failed: the signed file could not be written ({exc.strerror or type(exc).__name__})"
    why = str(exc) or "its catalog or cross-reference table cannot be read"  # a bare AssertionError says nothing
    return (f"the PDF's internal structure is damaged ({why}), so it cannot be signed: open it and save it "
            "again as PDF (or print it to PDF), then upload the new file")


def _open_input(src: Path | BinaryIO) -> BinaryIO:
    if isinstance(src, Path):
        return open(src, "rb")
    return cast(BinaryIO, _NoClose(src))  # a file-like proxy that ignores close()


class _NoClose:
    """Context manager handing out a caller-owned stream without closing it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def __enter__(self) -> BinaryIO:
        return self._stream

    def __exit__(self, *exc: object) -> None:
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PdfLayout:
    """What a signature needs to know of a PDF before it is signed."""

    fields: dict[str, bool]  # every signature field, and whether it is signed
    geometry: tuple[int, Box] | None  # page and /Rect of the field asked for, if it exists
    page: int  # the page of that field, else the page asked for
    page_box: Box  # that page's media box
    pages: int
    locked_by: str | None  # a signature that forbids any change to the file


ENCRYPTED = "the PDF is encrypted (password-protected): encrypted PDFs cannot be signed here; " \
    "ask the sender for an unencrypted copy"


def inspect_layout(src: Path | BinaryIO, field_name: str | None, page: int) -> PdfLayout:
    """The signature fields, locks and page geometry of ``src``.

    Raises SigningError (encrypted file, no such page) or SignatureCreationError (unreadable).
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    with _open_input(src) as inf:
        try:
            reader = PdfFileReader(inf, strict=False)
            if reader.encrypted:
                raise SigningError(ENCRYPTED)
            check_field_tree(reader)
            pages = page_count(reader)
            geometry = field_geometry(reader, field_name) if field_name else None
            target = geometry[0] if geometry else page
            if not 0 <= target < pages:
                raise SigningError(f"page {target} does not exist: the document has {pages} page(s), "
                                   f"numbered from 0 to {pages - 1}")
            return PdfLayout(signature_fields(reader), geometry, target, page_size(reader, target), pages,
                             locking_field(reader))
        except DAMAGED_PDF_ERRORS as exc:
            raise SignatureCreationError(signing_failure(exc)) from exc
        finally:
            if not isinstance(src, Path):
                src.seek(0)
