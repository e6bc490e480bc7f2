"""document: search keys with one tone-mark placement, eth read as đ, no format characters

The search columns are made again for every document, so that a query typed in either
style (hòa, hoà; thúy, thuý; ủy, uỷ) finds documents stored before the keys had one
placement, "dai hoi" finds "Ðại hội" written with U+00D0, and a zero-width space in a
subject no longer splits a word. The keys are read and written in batches by id, and
only the rows whose keys change are written. Downgrading leaves the keys as they are:
the older code matches them as well as any it would write.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 1000
_SEARCH_MAX = 2500  # Document.search_text and search_folded

# As service.text.search_key and fold at this revision, written out: a migration must not
# change with the code after it.
_TONES = "\u0300\u0301\u0303\u0309\u0323"
_ON_FIRST_VOWEL = re.compile(f"(o(?=[{_TONES}][ae])|u(?=[{_TONES}]y))([{_TONES}])(.)(?![\u0300-\u036f])")
_ETH = str.maketrans({"ð": "đ"})


def _letters(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.casefold().translate(_ETH))
    visible = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Cf")
    return _ON_FIRST_VOWEL.sub(r"\1\3\2", visible)


def _search_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", _letters(text)).split())[:_SEARCH_MAX]


def _fold(text: str) -> str:
    stripped = "".join(ch for ch in _letters(text) if not unicodedata.combining(ch))
    return " ".join(stripped.replace("đ", "d").split())[:_SEARCH_MAX]


_READ = sa.text("SELECT id, number_notation, subject, doc_type, search_text, search_folded FROM document "
                "WHERE id > :after ORDER BY id LIMIT :batch")
_WRITE = sa.text("UPDATE document SET search_text = :text, search_folded = :folded WHERE id = :id")


def upgrade() -> None:
    bind = op.get_bind()
    after = ""
    while rows := bind.execute(_READ, {"after": after, "batch": _BATCH}).all():
        changed = []
        for row_id, number_notation, subject, doc_type, text, folded in rows:
            # As service.documents.registry builds them: number, subject and type.
            searchable = f"{number_notation} {subject} {doc_type}"
            new_text, new_folded = _search_key(searchable), _fold(searchable)
            if (new_text, new_folded) != (text, folded):
                changed.append({"id": row_id, "text": new_text, "folded": new_folded})
        if changed:
            bind.execute(_WRITE, changed)
        after = rows[-1][0]


def downgrade() -> None:
    pass
