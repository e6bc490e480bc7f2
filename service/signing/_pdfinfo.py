"""Small read-only helpers over pyHanko's PDF reader (field geometry, page size)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

__all__ = ["field_geometry", "page_size", "signature_field_names"]

Box = tuple[float, float, float, float]


def _page_refs(node: Any) -> Iterator[generic.Reference]:
    for kid in node["/Kids"]:
        obj = kid.get_object()
        if obj.get("/Type") == "/Pages":
            yield from _page_refs(obj)
        else:
            yield kid.reference


def page_size(reader: PdfFileReader, page_ix: int) -> Box:
    page_ref, _ = reader.find_page_for_modification(page_ix)
    box = page_ref.get_object().get("/MediaBox") or reader.root["/Pages"]["/MediaBox"]
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)


def signature_field_names(reader: PdfFileReader) -> list[str]:
    return [name for name, _, _ in enumerate_sig_fields(reader, filled_status=None)]


def field_geometry(reader: PdfFileReader, field_name: str) -> tuple[int, Box] | None:
    """(page index, /Rect) of the signature field's widget, or None when absent."""
    for name, _, field_ref in enumerate_sig_fields(reader, filled_status=None):
        if name != field_name:
            continue
        field = field_ref.get_object()
        widget = field["/Kids"][0].get_object() if "/Kids" in field else field
        rect = tuple(float(v) for v in widget["/Rect"])
        page = widget.get_value_as_reference("/P") if "/P" in widget else None
        pages = list(_page_refs(reader.root["/Pages"]))
        index = pages.index(page) if page in pages else 0
        return index, (min(rect[0], rect[2]), min(rect[1], rect[3]), max(rect[0], rect[2]), max(rect[1], rect[3]))
    return None
