"""Small read-only helpers over pyHanko's PDF reader (field geometry, page size, locks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields

# What reading a damaged or ill-typed PDF raises in pyHanko: its own PdfError, and Python's
# errors where an object has the wrong type (/Annots 5, /Fields 7) or a reference leads nowhere;
# an AssertionError where pyHanko asserts the structure (a trailer /Root that is not a dictionary).
DAMAGED_PDF_ERRORS: tuple[type[Exception], ...] = (
    PdfError, KeyError, ValueError, IndexError, TypeError, AttributeError, ArithmeticError, RecursionError,
    AssertionError)

__all__ = ["DAMAGED_PDF_ERRORS", "HostileStructure", "check_field_tree", "field_geometry", "locking_field",
           "page_count", "page_size", "signature_field_names", "signature_fields"]

Box = tuple[float, float, float, float]
_MAX_DEPTH = 64  # a page tree deeper than this is a hostile file, not a document
_MAX_PAGES = 100_000
_MAX_FIELDS = 100_000


def _page_refs(node: Any, seen: set[generic.Reference], depth: int = 0) -> Iterator[generic.Reference]:
    # Each node once: a tree that lists one /Pages node twice, level after level, doubles
    # the walk at each level (2 KB of PDF, hours of work), and one that lists it in itself loops.
    if depth > _MAX_DEPTH:
        raise ValueError("the page tree is nested too deeply")
    for kid in node["/Kids"]:
        ref = kid.reference
        if ref in seen:
            raise ValueError("the page tree lists one of its nodes twice")
        seen.add(ref)
        if len(seen) > _MAX_PAGES:
            raise ValueError(f"the page tree has more than {_MAX_PAGES} nodes")
        obj = kid.get_object()
        if obj.get("/Type") == "/Pages":
            yield from _page_refs(obj, seen, depth + 1)
        else:
            yield ref


class HostileStructure(ValueError):
    """A structure no document has, made to exhaust whoever reads it."""


def check_field_tree(reader: PdfFileReader) -> None:
    """Raises HostileStructure for a form-field tree no document has: one that lists a field twice,
    is nested too deeply or is too large. pyHanko walks every path of the tree, so 2 KB of
    PDF that lists each node twice over 40 levels is 2**40 fields to it: call this first."""
    acroform = reader.root.get("/AcroForm")
    fields = acroform.get_object().get("/Fields") if acroform is not None else None
    if fields is None:
        return
    seen: set[generic.Reference] = set()
    todo: list[tuple[Any, int]] = [(item, 1) for item in fields.get_object()]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, generic.IndirectObject):
            if item.reference in seen:
                raise HostileStructure("the form field tree lists one of its fields twice")
            seen.add(item.reference)
        if depth > _MAX_DEPTH or len(seen) > _MAX_FIELDS:
            raise HostileStructure(f"the form field tree is deeper than {_MAX_DEPTH} levels or has more than "
                             f"{_MAX_FIELDS} fields")
        node = item.get_object()
        kids = node.get("/Kids") if isinstance(node, generic.DictionaryObject) else None
        if kids is not None:
            todo.extend((kid, depth + 1) for kid in kids.get_object())


def page_count(reader: PdfFileReader) -> int:
    """Raises ValueError for a page tree no document has (nested too deeply, a node listed twice)."""
    return sum(1 for _ in _page_refs(reader.root["/Pages"], set()))


def page_size(reader: PdfFileReader, page_ix: int) -> Box:
    """The part of the page a viewer shows: its /MediaBox cut to its /CropBox, if it has one
    (each inherited from the page's parents when the page has none)."""
    page_ref, _ = reader.find_page_for_modification(page_ix)
    page: Any = page_ref.get_object()
    media = _inherited(page, "/MediaBox")
    if media is None:
        raise ValueError(f"page {page_ix} has no /MediaBox")
    crop = _inherited(page, "/CropBox") or media
    x1, y1 = max(media[0], crop[0]), max(media[1], crop[1])
    x2, y2 = min(media[2], crop[2]), min(media[3], crop[3])
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"page {page_ix} shows nothing: its /CropBox lies outside its /MediaBox")
    return (x1, y1, x2, y2)


def _inherited(page: Any, key: str) -> Box | None:
    node: Any = page
    for _ in range(_MAX_DEPTH):
        if node is None or key in node:
            break
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
    if node is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in node[key])
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def signature_field_names(reader: PdfFileReader) -> list[str]:
    return [name for name, _, _ in enumerate_sig_fields(reader, filled_status=None)]


def signature_fields(reader: PdfFileReader) -> dict[str, bool]:
    """Every signature field's name, and whether it holds a signature."""
    return {name: value is not None for name, value, _ in enumerate_sig_fields(reader, filled_status=None)}


def locking_field(reader: PdfFileReader) -> str | None:
    """The name of a signature that forbids any change to the file (DocMDP P=1, in its
    signature dictionary or in its field's /Lock), if there is one."""
    for name, value, field_ref in enumerate_sig_fields(reader, filled_status=True):
        if _forbids_changes(value.get_object(), field_ref.get_object()):
            return str(name)
    return None


def _forbids_changes(signature: Any, field: Any) -> bool:
    try:
        for ref in signature.get("/Reference", ()):
            ref = ref.get_object()
            if ref.get("/TransformMethod") == "/DocMDP" and _no_changes(ref["/TransformParams"].get("/P", 2)):
                return True
        lock = field.get("/Lock")
        return lock is not None and _no_changes(lock.get_object().get("/P"))
    except (KeyError, TypeError, ValueError, AttributeError):  # a malformed lock: pyHanko's signer judges it
        return False


def _no_changes(value: Any) -> bool:
    return value is not None and int(value) == MDPPerm.NO_CHANGES.value


def field_geometry(reader: PdfFileReader, field_name: str) -> tuple[int, Box] | None:
    """(page index, /Rect) of the signature field's widget, or None when absent."""
    for name, _, field_ref in enumerate_sig_fields(reader, filled_status=None):
        if name != field_name:
            continue
        field = field_ref.get_object()
        widget = field["/Kids"][0].get_object() if "/Kids" in field else field
        rect = tuple(float(v) for v in widget["/Rect"])
        page = widget.get_value_as_reference("/P") if "/P" in widget else None
        pages = list(_page_refs(reader.root["/Pages"], set()))
        index = pages.index(page) if page in pages else 0
        return index, (min(rect[0], rect[2]), min(rect[1], rect[3]), max(rect[0], rect[2]), max(rect[1], rect[3]))
    return None
