"""DocumentSigner: the three Decree 30 signatures over one loaded key.

Locking, so that any change after the seal is detectable:
* the personal signature is an approval signature (pyHanko refuses the seal's
  FieldMDP/Lock update after a certification signature);
* the organisation seal locks all fields (FieldMDP ALL) and sets ``/Lock``
  DocMDP P=1, so nothing at all may follow except LTV (DSS/timestamp) updates;
* an attachment seal certifies with P=1 (or locks like the seal when the file
  was already signed).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import BaseStampStyle

from service.signing.appearance import (
    FontConfig,
    attachment_box,
    attachment_style,
    image_style,
    make_seal_png,
    make_signature_png,
    seal_box,
)
from service.signing.errors import SigningError
from service.signing.keys import KeyProvider
from service.signing.pades import (
    Box,
    Placement,
    SigningOptions,
    SignJob,
    SignResult,
    metadata,
    now_vn,
    read_layout,
    run_signing,
)
from service.signing.trust import TrustConfig

__all__ = ["DocumentSigner"]

PERSONAL_FIELD = "Sig-Personal"
ORGANISATION_FIELD = "Sig-Organisation"
ATTACHMENT_FIELD = "Sig-Attachment"
_DEFAULT_BOX: Box = (330.0, 120.0, 500.0, 200.0)
_LOCK_ALL = fields.FieldMDPSpec(fields.FieldMDPAction.ALL)
_OPTIONS = SigningOptions()  # frozen: safe as a shared default
_FONTS = FontConfig()


class DocumentSigner:
    """Signs PDFs with one key. Keep one per key: the key, the TSA client and
    the style objects stay loaded between calls."""

    def __init__(
        self,
        keys: KeyProvider,
        *,
        timestamper: TimeStamper | None,
        trust: TrustConfig | None = None,
        fonts: FontConfig = _FONTS,
    ) -> None:
        self._keys = keys
        self._timestamper = timestamper
        self._trust = trust
        self._fonts = fonts

    async def sign_personal(
        self,
        src: Path | BinaryIO,
        dst: Path,
        *,
        placement: Placement,
        signer_name: str,
        image_png: bytes | None = None,
        options: SigningOptions = _OPTIONS,
    ) -> SignResult:
        """Visible personal signature (blue image), an approval signature so the
        organisation seal can follow. Raises SigningError."""
        _, geometry, _ = read_layout(src, placement.field_name, placement.page)
        name = placement.field_name or PERSONAL_FIELD
        png = image_png or make_signature_png(signer_name, self._fonts)
        box = placement.box or _DEFAULT_BOX
        spec = None if geometry else _field_spec(name, placement.page, box)
        meta = metadata(name, options, self._trust, name=_nfc(signer_name))
        return await self._run(src, dst, meta, image_style(png), spec, {}, options)

    async def sign_organisation(
        self,
        src: Path | BinaryIO,
        dst: Path,
        *,
        unit_name: str,
        personal_field: str = PERSONAL_FIELD,
        seal_png: bytes | None = None,
        seal_mm: float = 36.0,
        field_name: str = ORGANISATION_FIELD,
        options: SigningOptions = _OPTIONS,
    ) -> SignResult:
        """Red seal at real size over the left third of ``personal_field``; locks the
        document. Raises SigningError when the personal field is missing."""
        _, geometry, _ = read_layout(src, personal_field, 0)
        if geometry is None:
            raise SigningError(f"no signature field {personal_field!r} to place the seal on")
        page, box = geometry
        png = seal_png or make_seal_png(unit_name, fonts=self._fonts)
        spec = _field_spec(field_name, page, seal_box(box, seal_mm), lock_all=True)
        meta = metadata(field_name, options, self._trust, name=_nfc(unit_name))
        return await self._run(src, dst, meta, image_style(png), spec, {}, options)

    async def sign_attachment(
        self,
        src: Path | BinaryIO,
        dst: Path,
        *,
        number_notation: str,
        unit_name: str,
        field_name: str = ATTACHMENT_FIELD,
        options: SigningOptions = _OPTIONS,
    ) -> SignResult:
        """Organisation signature on an attachment (Decree 30 App. I): no image, text
        "number and notation" + signing time (ISO 8601, +07:00), 10 pt black, top right
        of page 1, the box sized to the text. Certifies (P=1) an unsigned file, else
        locks like the seal. Raises SigningError."""
        existing, _, page_box = read_layout(src, None, 0)
        signed_at = now_vn()
        params = {"number": _nfc(number_notation), "signed_at": signed_at.isoformat()}
        font = self._fonts.covering(params["number"])
        box = attachment_box([params["number"], params["signed_at"]], page_box, font)
        if existing:
            spec = _field_spec(field_name, 0, box, lock_all=True)
            extra: dict[str, object] = {}
        else:
            spec = _field_spec(field_name, 0, box)
            extra = {"certify": True, "docmdp_permissions": fields.MDPPerm.NO_CHANGES}
        meta = metadata(field_name, options, self._trust, name=_nfc(unit_name), **extra)
        return await self._run(src, dst, meta, attachment_style(font), spec, params, options, signed_at)

    async def _run(
        self,
        src: Path | BinaryIO,
        dst: Path,
        meta: signers.PdfSignatureMetadata,
        style: BaseStampStyle,
        spec: fields.SigFieldSpec | None,
        params: dict[str, str],
        options: SigningOptions,
        signed_at: datetime | None = None,
    ) -> SignResult:
        job = SignJob(
            meta=meta, signer=await self._keys.signer(), timestamper=self._timestamper,
            style=style,
            field_spec=spec, text_params=params, options=options, signed_at=signed_at or now_vn(),
        )
        return await run_signing(src, dst, job)


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _field_spec(name: str, page: int, box: Box, *, lock_all: bool = False) -> fields.SigFieldSpec:
    """A new visible signature field; ``lock_all`` locks every field and forbids any later change."""
    return fields.SigFieldSpec(
        name, on_page=page,
        # pyHanko annotates ``box`` as ints but writes any PDF number; our boxes are in (fractional) points.
        box=box,  # type: ignore[arg-type]
        field_mdp_spec=_LOCK_ALL if lock_all else None,
        doc_mdp_update_value=fields.MDPPerm.NO_CHANGES if lock_all else None,
    )
