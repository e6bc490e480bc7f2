"""delivery: an incoming number is given once per unit and year

``incoming_key`` is the year (Vietnam time) and a digest of the number as compared; a unique key on
(recipient unit, incoming_key) keeps two documents from one place in a unit's incoming
book. Registrations made before it keep their number; of two that share one, the later
is left without a key (its number still shows) rather than refused after the fact.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_VN = timezone(timedelta(hours=7))


def _key(number: str, registered_at: datetime | None) -> str | None:
    # As service.documents.handling.incoming_key, written out: a migration must not change
    # with the code after it.
    text = " ".join(unicodedata.normalize("NFC", number).strip().casefold().split())
    if not text or registered_at is None:
        return None
    if re.fullmatch("[0-9]+", text):
        text = str(int(text))
    moment = registered_at if registered_at.tzinfo else registered_at.replace(tzinfo=UTC)
    return f"{moment.astimezone(_VN).year}:{hashlib.sha256(text.encode()).hexdigest()}"


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("incoming_key", sa.String(length=80), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, recipient_unit_id, incoming_number, registered_at FROM delivery "
                                "WHERE incoming_number IS NOT NULL ORDER BY registered_at, id")).all()
    seen: set[tuple[str, str]] = set()
    keyed = []
    for row_id, unit_id, number, registered_at in rows:
        if isinstance(registered_at, str):  # SQLite hands back its text
            registered_at = datetime.fromisoformat(registered_at)
        key = _key(number, registered_at)
        if key is not None and (unit_id, key) not in seen:
            seen.add((unit_id, key))
            keyed.append({"id": row_id, "key": key})
    if keyed:
        bind.execute(sa.text("UPDATE delivery SET incoming_key = :key WHERE id = :id"), keyed)
    # An index, not a table constraint: SQLite adds it without copying the table.
    op.create_index("uq_delivery_incoming", "delivery", ["recipient_unit_id", "incoming_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_delivery_incoming", table_name="delivery")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_column("incoming_key")
