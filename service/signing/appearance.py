"""Signature appearances (Decree 30/2020 Appendix I).

* personal signature: blue handwritten-signature PNG with transparency;
* organisation signature: red round seal at real size, overlapping the left
  third of the personal signature;
* attachment: no image, "number and notation" + signing time, Times New Roman
  metrics (Tinos when installed: metric-compatible, full Vietnamese), 10 pt,
  black, embedded font, top right of page 1.
"""

from __future__ import annotations

import io
import math
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pyhanko.pdf_utils import images, layout, text
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.stamp import TextStampStyle

from service.signing.errors import SignatureCreationError

__all__ = [
    "ATTACHMENT_FONT_SIZE",
    "MM_TO_PT",
    "FontConfig",
    "attachment_box",
    "attachment_style",
    "image_style",
    "make_seal_png",
    "make_signature_png",
    "seal_box",
]

MM_TO_PT = 72 / 25.4
ATTACHMENT_FONT_SIZE = 10
_LEADING = 12
_PAD = 2  # points (an int: pyHanko layout needs rationals) of air around the attachment text, inside its box
_CROSCORE = Path("/usr/share/fonts/truetype/croscore")
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_BLUE = (23, 50, 170, 255)
_RED = (210, 20, 30, 255)


def _default_regular() -> Path:
    # Tinos (fonts-croscore) = Times New Roman metrics with every Vietnamese letter;
    # Debian's Liberation Serif lacks the precomposed ones (ễ, ố, ủ ...).
    tinos = _CROSCORE / "Tinos-Regular.ttf"
    return tinos if tinos.exists() else _DEJAVU / "DejaVuSerif.ttf"


@dataclass(frozen=True)
class FontConfig:
    """TTF files used for appearances. ``regular`` is the attachment text font
    (Times New Roman or a metric-compatible one); ``fallback`` is used when it
    lacks a glyph of the text; ``bold``/``italic`` draw the seal and signature images."""

    regular: Path = field(default_factory=_default_regular)
    fallback: Path = _DEJAVU / "DejaVuSerif.ttf"
    bold: Path = _DEJAVU / "DejaVuSerif-Bold.ttf"
    italic: Path = _DEJAVU / "DejaVuSerif-BoldItalic.ttf"

    def covering(self, value: str) -> Path:
        """The regular font if it has every glyph of ``value``, else the fallback."""
        return self.regular if _covers(self.regular, value) else self.fallback


@lru_cache(maxsize=8)
def _cmap(font: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(font)).getBestCmap())


def _covers(font: Path, value: str) -> bool:
    cmap = _cmap(font)
    return all(ord(ch) in cmap for ch in value if not ch.isspace())


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


# -- images ---------------------------------------------------------------------
def make_signature_png(full_name: str, fonts: FontConfig = FontConfig()) -> bytes:
    """A clean blue signature-like image of ``full_name`` on a transparent background."""
    name = _nfc(full_name)
    font = ImageFont.truetype(str(fonts.italic), 96)
    left, top, right, bottom = font.getbbox(name)
    # Pillow types the bbox as floats; it holds whole pixels, and Image.new wants ints.
    width, height = int(right - left) + 80, int(bottom - top) + 90
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.text((40 - left, 20 - top), name, font=font, fill=_BLUE)
    # a flourish under the name, like a pen stroke
    base = height - 40
    points = [(30 + i * (width - 60) / 40, base + 10 * math.sin(i / 40 * math.pi * 1.5)) for i in range(41)]
    draw.line(points, fill=_BLUE, width=6, joint="curve")
    return _png(img)


def make_seal_png(unit_name: str, centre_text: str = "", fonts: FontConfig = FontConfig(), px: int = 800) -> bytes:
    """A round red seal: double rim, unit name around the top, a star in the middle."""
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c = px / 2
    draw.ellipse((8, 8, px - 8, px - 8), outline=_RED, width=int(px * 0.025))
    inner = px * 0.30
    draw.ellipse((c - inner, c - inner, c + inner, c + inner), outline=_RED, width=int(px * 0.012))
    _draw_star(draw, c, c - px * 0.05, px * 0.11)
    if centre_text:
        font = ImageFont.truetype(str(fonts.bold), int(px * 0.05))
        draw.text((c, c + px * 0.14), _nfc(centre_text), font=font, fill=_RED, anchor="mm")
    _draw_arc_text(img, _nfc(unit_name).upper(), ImageFont.truetype(str(fonts.bold), int(px * 0.075)), px * 0.385)
    return _png(img)


def _draw_star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.4
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    draw.polygon(points, fill=_RED)


def _draw_arc_text(img: Image.Image, label: str, font: ImageFont.FreeTypeFont, radius: float) -> None:
    """Write ``label`` clockwise along the rim, centred on the top of the seal."""
    c = img.width / 2
    widths = [font.getlength(ch) * 1.08 for ch in label]
    total_angle = min(sum(widths) / radius, math.radians(300))
    scale = total_angle / (sum(widths) / radius) if widths else 1.0
    angle = -math.pi / 2 - total_angle / 2
    for ch, w in zip(label, widths, strict=True):
        step = w / radius * scale
        mid = angle + step / 2
        _paste_glyph(img, ch, font, c + radius * math.cos(mid), c + radius * math.sin(mid), mid)
        angle += step


def _paste_glyph(img: Image.Image, ch: str, font: ImageFont.FreeTypeFont, x: float, y: float, angle: float) -> None:
    size = int(font.size * 2)
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((size / 2, size / 2), ch, font=font, fill=_RED, anchor="mm")
    rotated = tile.rotate(-math.degrees(angle) - 90, resample=Image.Resampling.BICUBIC)
    img.alpha_composite(rotated, (int(x - size / 2), int(y - size / 2)))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# -- stamp styles ---------------------------------------------------------------------
def image_style(png: bytes) -> TextStampStyle:
    """An appearance that is just the (transparent) image, scaled to the box.

    Raises SignatureCreationError if the image cannot be read."""
    try:
        pil: Image.Image = Image.open(io.BytesIO(png))
        pil.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # stored before images were fully checked
        raise SignatureCreationError("the signature or seal image is damaged; upload it again") from exc
    if pil.mode not in ("RGBA", "LA"):
        pil = pil.convert("RGBA")
    return TextStampStyle(
        stamp_text="",
        border_width=0,
        background=images.PdfImage(pil),
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            inner_content_scaling=layout.InnerScaling.SHRINK_TO_FIT,
        ),
    )


# pyHanko 0.38 writes glyph widths (/W) and TJ adjustments in font units but PDF
# expects 1/1000 em: a 2048-unit TrueType font (Tinos, Liberation, DejaVu) comes
# out letter-spaced and overflows its box. Rescale the font to 1000 units first.
@lru_cache(maxsize=4)
def _font_1000_upem(font: Path) -> bytes:
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    tt = TTFont(str(font))
    for table in ("DSIG", "fpgm", "prep", "cvt ", "hdmx", "VDMX", "LTSH"):  # hinting: useless in PDF
        if table in tt:
            del tt[table]
    if tt["head"].unitsPerEm != 1000:
        scale_upem(tt, 1000)
    buf = io.BytesIO()
    tt.save(buf)
    return buf.getvalue()


@dataclass(frozen=True)
class _ScaledGlyphAccumulatorFactory(GlyphAccumulatorFactory):
    """GlyphAccumulatorFactory fed with the 1000-unit copy of ``font_file``."""

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer, font_handle=io.BytesIO(_font_1000_upem(Path(self.font_file))),
            font_size=self.font_size, obj_stream=obj_stream,
        )


@lru_cache(maxsize=16)
def _advance_width(font: Path, value: str, size: float) -> float:
    """Advance width of ``value`` in points (no kerning: the attachment text is short)."""
    from fontTools.ttLib import TTFont

    tt = TTFont(str(font), lazy=True)
    cmap, hmtx, upem = tt.getBestCmap(), tt["hmtx"], tt["head"].unitsPerEm
    missing = hmtx[".notdef"][0] if ".notdef" in hmtx.metrics else upem // 2
    units = sum(hmtx[cmap[ord(ch)]][0] if ord(ch) in cmap else missing for ch in value)
    width: float = units * size / upem
    return width


def attachment_box(
    lines: list[str], page: tuple[float, float, float, float], font: Path, margin: float = 28.0
) -> tuple[float, float, float, float]:
    """Box hugging ``lines`` at 10 pt in the top right corner of ``page``, ``margin`` points from its edges."""
    width = max(_advance_width(font, _nfc(line), ATTACHMENT_FONT_SIZE) for line in lines) + 2 * _PAD + 1
    height = _LEADING * len(lines) + 2 * _PAD
    _, _, x2, y2 = page
    return (x2 - margin - width, y2 - margin - height, x2 - margin, y2 - margin)


@lru_cache(maxsize=4)
def attachment_style(font_file: Path, template: str = "%(number)s\n%(signed_at)s") -> TextStampStyle:
    """Black 10 pt text (embedded, 1000-unit rescaled font), right-aligned, no border, no image."""
    return TextStampStyle(
        stamp_text=template,
        border_width=0,
        background=None,
        text_box_style=text.TextBoxStyle(
            font=_ScaledGlyphAccumulatorFactory(str(font_file), font_size=ATTACHMENT_FONT_SIZE),
            font_size=ATTACHMENT_FONT_SIZE,
            leading=_LEADING,
            border_width=0,
            text_color=(0, 0, 0),
            box_layout_rule=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MAX, y_align=layout.AxisAlignment.ALIGN_MAX,
                margins=layout.Margins(_PAD, _PAD, _PAD, _PAD),
            ),
        ),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MAX,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            inner_content_scaling=layout.InnerScaling.NO_SCALING,
            margins=layout.Margins(0, 0, 0, 0),
        ),
    )


def seal_box(personal: tuple[float, float, float, float], diameter_mm: float) -> tuple[float, float, float, float]:
    """Square box of the seal: real size, its right edge a little past the left
    third of the personal signature box, vertically centred on it."""
    x1, y1, x2, y2 = personal
    d = diameter_mm * MM_TO_PT
    right = x1 + (x2 - x1) / 3 + d * 0.12
    cy = (y1 + y2) / 2
    return (right - d, cy - d / 2, right, cy + d / 2)
