"""document, unit: search keys read fullwidth and other compatibility forms as their letters,
and the tone mark of qu and gi on the vowel after them

The search columns of every document are made again, so that "ke hoach" finds a subject
typed with fullwidth letters (ｋế hoạch), "quý iv" finds "Quý Ⅳ", and "quá" or "già" find a
subject written "qúa" or "gìa". The folded name of every unit is made again too: it is what
tells whether two sealed units bear one name, and a name in fullwidth letters must not pass
for another. Rows are read and written in batches by id, and only rows whose keys change are
written. Downgrading leaves the keys as they are.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 1000
_SEARCH_MAX = 2500  # Document.search_text and search_folded
_NAME_MAX = 300  # Unit.name_folded

# As service.text.search_key and fold at this revision, written out: a migration must not
# change with the code after it.
_TONES = "\u0300\u0301\u0303\u0309\u0323"
_ON_FIRST_VOWEL = re.compile(f"(o(?=[{_TONES}][ae])|u(?=[{_TONES}]y))([{_TONES}])(.)(?![\u0300-\u036f])")
_ON_CONSONANT_VOWEL = re.compile(f"\\b(qu|gi)([{_TONES}])([aeiouy][\u0302\u0306\u031b]?)(?![\u0300-\u036f])")
_ETH = str.maketrans({"ð": "đ"})


def _letters(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold().translate(_ETH))
    visible = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Cf")
    return _ON_CONSONANT_VOWEL.sub(r"\1\3\2", _ON_FIRST_VOWEL.sub(r"\1\3\2", visible))


def _search_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", _letters(text)).split())[:_SEARCH_MAX]


def _fold(text: str, limit: int = _SEARCH_MAX) -> str:
    stripped = "".join(ch for ch in _letters(text) if not unicodedata.combining(ch))
    return " ".join(stripped.replace("đ", "d").split())[:limit]


_READ_DOCUMENTS = sa.text("SELECT id, number_notation, subject, doc_type, search_text, search_folded FROM document "
                          "WHERE id > :after ORDER BY id LIMIT :batch")
_WRITE_DOCUMENTS = sa.text("UPDATE document SET search_text = :text, search_folded = :folded WHERE id = :id")
_READ_UNITS = sa.text("SELECT id, name, name_folded FROM unit WHERE id > :after ORDER BY id LIMIT :batch")
_WRITE_UNITS = sa.text("UPDATE unit SET name_folded = :folded WHERE id = :id")


def upgrade() -> None:
    bind = op.get_bind()
    after = ""
    while rows := bind.execute(_READ_DOCUMENTS, {"after": after, "batch": _BATCH}).all():
        changed = []
        for row_id, number_notation, subject, doc_type, text, folded in rows:
            # As service.documents.registry builds them: number, subject and type.
            searchable = f"{number_notation} {subject} {doc_type}"
            new_text, new_folded = _search_key(searchable), _fold(searchable)
            if (new_text, new_folded) != (text, folded):
                changed.append({"id": row_id, "text": new_text, "folded": new_folded})
        if changed:
            bind.execute(_WRITE_DOCUMENTS, changed)
        after = rows[-1][0]
    after = ""
    while rows := bind.execute(_READ_UNITS, {"after": after, "batch": _BATCH}).all():
        changed = [{"id": row_id, "folded": _fold(name, _NAME_MAX)} for row_id, name, folded in rows
                   if _fold(name, _NAME_MAX) != folded]
        if changed:
            bind.execute(_WRITE_UNITS, changed)
        after = rows[-1][0]


def downgrade() -> None:
    pass
