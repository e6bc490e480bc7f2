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

import asyncio
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from asn1crypto import x509 as asn1_x509
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
    PdfLayout,
    Placement,
    SigningOptions,
    SignJob,
    SignResult,
    inspect_layout,
    metadata,
    now_vn,
    run_signing,
)
from service.signing.trust import TrustConfig

__all__ = ["DocumentSigner", "check_personal_placement", "default_box", "personal_box", "unlocked"]

PERSONAL_FIELD = "Sig-Personal"
ORGANISATION_FIELD = "Sig-Organisation"
ATTACHMENT_FIELD = "Sig-Attachment"
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

    async def certificate(self) -> asn1_x509.Certificate:
        """The certificate this signer signs with. Raises KeyProviderError."""
        cert: asn1_x509.Certificate = (await self._keys.signer()).signing_cert
        return cert

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
        organisation seal can follow. Raises SigningError (see :func:`personal_box`)."""
        box = personal_box(await _layout(src, placement.field_name, placement.page), placement)
        name = placement.field_name or PERSONAL_FIELD
        png = image_png or make_signature_png(signer_name, self._fonts)
        spec = None if box is None else _field_spec(name, placement.page, box)
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
        document. Raises SigningError when the personal field is missing or the file is locked."""
        layout = unlocked(await _layout(src, personal_field, 0))
        if layout.geometry is None:
            raise SigningError(f"no signature field {personal_field!r} to place the seal on")
        page, box = layout.geometry
        png = seal_png or make_seal_png(unit_name, fonts=self._fonts)
        spec = _field_spec(field_name, page, _fitted(seal_box(box, seal_mm), layout), lock_all=True)
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
        locks like the seal. Raises SigningError (also when a signature in the file
        forbids any change)."""
        layout = unlocked(await _layout(src, None, 0))
        existing, page_box = list(layout.fields), layout.page_box
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


def unlocked(layout: PdfLayout) -> PdfLayout:
    """``layout``, unless a signature in the file forbids any change. Raises SigningError."""
    if layout.locked_by is not None:
        raise SigningError(f"the signature {layout.locked_by!r} in this PDF locks it (Author signature forbids "
                           "all changes): anything added now would break that signature, so it cannot be signed")
    return layout


def personal_box(layout: PdfLayout, placement: Placement) -> Box | None:
    """The box of a new personal signature field, or None to sign ``placement.field_name``,
    an existing empty field. Raises SigningError: the file is locked, the field is signed
    already, does not exist and no box places it, or the box is not inside the page."""
    unlocked(layout)
    name = placement.field_name or PERSONAL_FIELD
    signed = layout.fields.get(name)
    if signed:
        raise SigningError(f"the signature field {name!r} is signed already; name another field in field_name")
    if signed is not None:
        if placement.field_name is None or placement.box is not None:
            raise SigningError(f"the document already has an empty signature field {name!r}: sign it by giving "
                               "its name in field_name, without a box (it has its own place)")
        if layout.geometry is not None:  # a signature must be seen: on the page, large enough to show
            _shown(layout.geometry[1], f"the empty signature field {name!r}", layout)
        return None
    if placement.field_name is not None and placement.box is None:
        empty = sorted(n for n, s in layout.fields.items() if not s)
        raise SigningError(f"the document has no signature field {name!r} (its empty signature fields: "
                           f"{', '.join(map(repr, empty)) or 'none'}); give a box too to place a new field "
                           "with this name")
    return _inside_page(placement.box or default_box(layout.page_box), layout)


def default_box(page_box: Box) -> Box:
    """Where a personal signature goes when no box is given: lower right of the page,
    95 pt from the right edge and 120 pt up, 170 × 80 pt — (330, 120, 500, 200) on A4."""
    x1, y1, x2, _ = page_box
    right = x2 - 95
    return (max(x1, right - 170), y1 + 120, right, y1 + 200)


_MIN_SIDE = 10  # points: a smaller box shows nothing (the API refuses a smaller new box, api/routes/signing.py)


def _shown(box: Box, what: str, layout: PdfLayout) -> None:
    if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
        raise SigningError(f"{what} is {_pt(box[2] - box[0])} x {_pt(box[3] - box[1])} points, too small to show a "
                           f"signature (at least {_MIN_SIDE} x {_MIN_SIDE}); give a box to place a new field instead")
    try:
        _inside_page(box, layout)
    except SigningError as exc:
        raise SigningError(f"{what} lies off the visible page: {exc.detail}") from exc


def _fitted(box: Box, layout: PdfLayout) -> Box:
    """``box`` moved, as little as needed, to lie inside the visible page (the seal overlaps
    a signature near the page's edge). Raises SigningError when it is larger than the page."""
    x1, y1, x2, y2 = layout.page_box
    width, height = box[2] - box[0], box[3] - box[1]
    if width > x2 - x1 or height > y2 - y1:
        raise SigningError(f"the seal ({_pt(width)} x {_pt(height)} points) is larger than page {layout.page}")
    left = min(max(box[0], x1), x2 - width)
    bottom = min(max(box[1], y1), y2 - height)
    return (left, bottom, left + width, bottom + height)


def _inside_page(box: Box, layout: PdfLayout) -> Box:
    x1, y1, x2, y2 = layout.page_box
    if not (x1 <= box[0] and y1 <= box[1] and box[2] <= x2 and box[3] <= y2):
        raise SigningError(f"the box [{_pt(box[0])}, {_pt(box[1])}, {_pt(box[2])}, {_pt(box[3])}] is not inside "
                           f"page {layout.page}, which is {_pt(x2 - x1)} x {_pt(y2 - y1)} points (x from "
                           f"{_pt(x1)} to {_pt(x2)}, y from {_pt(y1)} to {_pt(y2)}); place the signature on the page")
    return box


def _pt(value: float) -> str:
    return f"{value:g}"


async def _layout(src: Path | BinaryIO, field_name: str | None, page: int) -> PdfLayout:
    # On a thread: reading a large or hostile file's structure must not hold up the event loop.
    return await asyncio.to_thread(inspect_layout, src, field_name, page)


def check_personal_placement(src: Path | BinaryIO, placement: Placement) -> Box | None:
    """Where a personal signature goes (see :func:`personal_box`), checked before any work
    is done; the two-step signature prepares with it. Raises SigningError."""
    return personal_box(inspect_layout(src, placement.field_name, placement.page), placement)


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
