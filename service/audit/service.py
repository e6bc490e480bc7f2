"""Append to, read and verify the hash-chained audit log."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    String,
    Text,
    bindparam,
    cast,
    event,
    func,
    insert,
    literal_column,
    select,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType
from sqlmodel import col

from service.audit.models import AuditEntry, AuditHead
from service.storage import driver
from service.storage.db import ServiceSession
from service.storage.types import utcnow
from service.text import VN_TZ

__all__ = ["ChainReport", "DamagedEntry", "PendingEntry", "StoredEntry", "append", "entry_hash", "history",
           "verify_chain"]

GENESIS = "0" * 64


def entry_hash(entry: AuditEntry | PendingEntry | StoredEntry) -> str:
    """SHA-256 over the previous hash and every field of the entry."""
    return hashlib.sha256(_canonical(entry, entry.prev_hash, entry.seq).encode()).hexdigest()


def _canonical(entry: AuditEntry | PendingEntry | StoredEntry, prev_hash: str, seq: int) -> str:
    content = {
        "seq": seq,
        "at": entry.at.isoformat(),
        "actor_id": entry.actor_id,
        "unit_id": entry.unit_id,
        "action": entry.action,
        "document_id": entry.document_id,
        "object_id": entry.object_id,
        "data": entry.data,
        "prev_hash": prev_hash,
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


_CHAINED = '"prev_hash":"","seq":0,'  # the two values the head decides, as _canonical writes them empty
_BETWEEN = '","seq":'  # what comes between them


def _around_chained(entry: PendingEntry) -> tuple[str, str]:
    """The canonical text of ``entry`` before its previous hash and after its sequence number:
    ``before + prev_hash + '","seq":' + str(seq) + after`` is what ``entry_hash`` hashes."""
    text = _canonical(entry, "", 0)
    cut = text.rindex(_CHAINED)  # the top-level pair (sorted keys: only "unit_id" follows it)
    return text[:cut] + '"prev_hash":"', "," + text[cut + len(_CHAINED):]  # joined with _BETWEEN


@dataclass
class PendingEntry:
    """An action recorded in a transaction, chained when the transaction commits."""

    at: datetime
    actor_id: str | None
    unit_id: str | None
    action: str
    document_id: str | None
    object_id: str | None
    data: dict[str, Any]
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    def row(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor_id": self.actor_id, "unit_id": self.unit_id,
                "action": self.action, "document_id": self.document_id, "object_id": self.object_id,
                "data": self.data, "prev_hash": self.prev_hash, "hash": self.hash}


_PENDING = driver.per_transaction("audit_pending")


async def append(
    session: AsyncSession,
    *,
    action: str,
    actor_id: str | None = None,
    unit_id: str | None = None,
    document_id: str | None = None,
    object_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> PendingEntry:
    """Record one action in the caller's transaction.

    The entry is chained (sequence number, previous hash, own hash) when the
    transaction commits: the chain's head is locked only for that moment, not for
    the whole request, and a rolled-back transaction leaves no entry.
    """
    entry = PendingEntry(utcnow(), actor_id, unit_id, action, document_id, object_id, data or {})
    driver.in_transaction(session).info.setdefault(_PENDING, []).append(entry)
    return entry


_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_ENTRY = AuditEntry.__table__  # type: ignore[attr-defined]
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_ADD_ENTRIES = insert(_ENTRY)
_FIELDS = ("at", "actor_id", "unit_id", "action", "document_id", "object_id", "data")  # set by the service

# PostgreSQL chains a transaction's entries itself, in one statement: lock the head, hash
# each entry onto the one before, move the head, insert the entries. The head row's lock
# orders every appender of every process; nothing waits for a head read earlier.
_AT_ONCE = 8  # entries per statement (a request makes one to three)
_chains: dict[int, Insert] = {}


def _chain_statement(count: int, gate: ColumnElement[bool] | None = None) -> Insert:
    """Chain ``count`` entries onto the head and move it, in one statement returning the
    entries' sequence numbers; ``gate``: a condition evaluated before the head is locked.

    Each entry's hash is PostgreSQL's ``sha256`` of the text ``entry_hash`` hashes, put
    together from what the service wrote around the previous hash and the sequence number
    (``before_n``, ``after_n``) and those two values, taken from the locked head. The head
    is read ``FOR UPDATE``: a transaction that moved it and has not committed is waited for,
    and the head is then read as that one left it. A missing head row yields no sequence
    number, which the table refuses: the statement fails rather than chain onto nothing.

    The head is the last lock a transaction takes: the writes that ride with this statement
    (``storage.driver.fetch_last``) are made to finish first through ``gate``. Otherwise the
    statement would hold the head while waiting for a row another transaction holds, and
    that transaction waits for the head at its commit.
    """
    if gate is not None:  # a shape of its own, kept by storage.driver
        return _build_chain(count, gate)
    statement = _chains.get(count)
    if statement is None:
        statement = _chains[count] = _build_chain(count, None)
    return statement


def _build_chain(count: int, gate: ColumnElement[bool] | None) -> Insert:
    head = (select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1, *(() if gate is None else (gate,)))
            .with_for_update().cte("head"))
    one = select(literal_column("1").label("one")).subquery("one")
    previous: Any = select(head.c.seq, head.c.hash).select_from(one.outerjoin(head, true())).subquery("before_head")
    steps = []
    for n in range(count):
        seq = previous.c.seq + 1
        text = (bindparam(f"before_{n}", type_=Text) + previous.c.hash + literal_column(f"'{_BETWEEN}'")
                + cast(seq, Text) + bindparam(f"after_{n}", type_=Text))
        hashed = func.encode(func.sha256(func.convert_to(text, literal_column("'UTF8'"))), literal_column("'hex'"),
                             type_=String)
        previous = select(seq.label("seq"), previous.c.hash.label("prev_hash"), hashed.label("hash")).cte(f"entry_{n}")
        steps.append(previous)
    moved = update(_HEAD).where(_HEAD.c.id == 1).values(seq=previous.c.seq, hash=previous.c.hash).cte("moved")
    rows = [select(step.c.seq, *(bindparam(f"{name}_{n}", type_=_ENTRY.c[name].type) for name in _FIELDS),
                   step.c.prev_hash, step.c.hash) for n, step in enumerate(steps)]
    return (insert(_ENTRY).from_select(["seq", *_FIELDS, "prev_hash", "hash"],
                                       union_all(*rows) if count > 1 else rows[0])
            .add_cte(moved).returning(_ENTRY.c.seq))


def _chain_params(pending: list[PendingEntry]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for at, entry in enumerate(pending):
        params[f"before_{at}"], params[f"after_{at}"] = _around_chained(entry)
        params.update({f"{name}_{at}": getattr(entry, name) for name in _FIELDS})
    return params


def _chain_in_database(session: Session, pending: list[PendingEntry]) -> None:
    chunks = [pending[at:at + _AT_ONCE] for at in range(0, len(pending), _AT_ONCE)]
    for n, chunk in enumerate(chunks, 1):
        params, count = _chain_params(chunk), len(chunk)
        try:
            # The last one carries the writes the transaction held for it (storage.driver).
            rows = (driver.fetch_last(session, functools.partial(_chain_statement, count), count, params)
                    if n == len(chunks) else driver.fetch_now(session.connection(), _chain_statement(count), params))
        except IntegrityError as exc:
            if _no_sequence_number(exc):
                raise RuntimeError("the audit log's head row is missing: run `docexchange audit verify`") from exc
            raise
        if len(rows) != len(chunk):
            raise RuntimeError(f"the audit chain took {len(rows)} of {len(chunk)} entries")


def _no_sequence_number(exc: IntegrityError) -> bool:
    """The chain found no head: the first entry's number came out NULL."""
    orig = exc.orig
    return (getattr(orig, "table_name", None) == _ENTRY.name and getattr(orig, "column_name", None) == "seq"
            and type(orig).__name__ == "NotNullViolationError")


def _chain(pending: list[PendingEntry], seq: int, prev: str) -> tuple[int, str]:
    for entry in pending:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev
        entry.hash = prev = entry_hash(entry)
    return seq, prev


@event.listens_for(ServiceSession, "before_commit", insert=True)  # before storage.driver's listener
def _chain_pending(session: Session) -> None:
    # Statements built once and sent to the driver: this runs in every writing transaction.
    pending: list[PendingEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        session.flush()  # the ORM's rows (after the held writes, sent first) before the chain
        _chain_in_database(session, pending)
        return
    # SQLite: the transaction holds the database's write lock since it began.
    head = driver.fetch_now(conn, _LOCK_HEAD, {})
    if not head:
        conn.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head[0]
    seq, prev = _chain(pending, seq, prev)
    driver.execute_now(conn, _ADD_ENTRIES, [entry.row() for entry in pending])
    driver.execute_now(conn, _MOVE_HEAD, [{"new_seq": seq, "new_hash": prev}])


@dataclass(frozen=True)
class StoredEntry:
    """An entry as read back from its row, decoded as the ORM decodes an ``AuditEntry``."""

    seq: int
    at: datetime
    actor_id: str | None
    unit_id: str | None
    action: str
    document_id: str | None
    object_id: str | None
    data: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class DamagedEntry:
    """A row altered outside the service so that its column types cannot decode it: what of
    it could be read, and ``reason`` saying what could not. ``at`` is None when it is the
    time that cannot be read; the entry's data is never kept (see ``data``)."""

    seq: int
    at: datetime | None
    actor_id: str | None
    unit_id: str | None
    action: str
    document_id: str | None
    object_id: str | None
    prev_hash: str
    hash: str
    reason: str

    @property
    def data(self) -> dict[str, Any]:
        """What a history shows in place of the entry's data: that it is damaged, and why."""
        return {"damaged": True, "note": self.reason}


# Read as the database returns them, then decoded one row at a time (``_read``): a value
# that cannot be decoded damages its row only, instead of failing the whole read.
_STORED = select(*(type_coerce(column, NullType()).label(column.name) for column in _ENTRY.c))
_CANNOT_DECODE = {"at": "its time is not a date and time", "data": "its data is not valid JSON"}
_Decoders = dict[str, Callable[[Any], Any]]


def _decoders(session: AsyncSession) -> _Decoders:
    """The conversions the columns' own types make of what the database returns: the values
    the ORM would load, hence the hashes it would compute."""
    dialect = session.get_bind().dialect
    processors = {column.name: column.type.dialect_impl(dialect).result_processor(dialect, None)
                  for column in _ENTRY.c}
    return {name: decode for name, decode in processors.items() if decode is not None}


def _read(row: Row[*tuple[Any, ...]], decoders: _Decoders) -> StoredEntry | DamagedEntry:
    """One row decoded; a value its column's type cannot decode makes the row a DamagedEntry
    instead of an error, so that a reader is told which entry and the rest still reads."""
    values, faults = dict(row._mapping), []
    for name, decode in decoders.items():
        try:
            values[name] = decode(values[name])
        except (ValueError, TypeError):
            values[name] = None
            faults.append(_CANNOT_DECODE.get(name, f"its {name} cannot be decoded"))
    if isinstance(values.get("at"), datetime) and not _shown_in_vietnam_time(values["at"]):
        values["at"] = None
        faults.append("its time is beyond the calendar")
    if not faults:
        return StoredEntry(**values)
    del values["data"]
    reason = f"entry #{values['seq']} cannot be read: {', '.join(faults)} — the row was altered"
    return DamagedEntry(**values, reason=reason)


def _shown_in_vietnam_time(moment: datetime) -> bool:
    """Whether a time can be shown in Vietnam time: the last hours of year 9999 cannot."""
    try:
        moment.astimezone(VN_TZ)
    except OverflowError:
        return False
    return True


async def history(session: AsyncSession, document_id: str) -> list[StoredEntry | DamagedEntry]:
    """The document's entries in chain order; a row that cannot be decoded is listed as a
    ``DamagedEntry`` rather than failing the history."""
    stmt = _STORED.where(_ENTRY.c.document_id == document_id).order_by(_ENTRY.c.seq)
    decoders = _decoders(session)
    return [_read(row, decoders) for row in await session.execute(stmt)]


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain from the first entry to the head."""

    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str = ""


async def verify_chain(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Recompute every hash; report the first altered, missing or reordered entry.

    The head is read first and the entries up to it: writers add entries and move the head
    in one transaction, so what they add while the walk runs is left for the next check,
    instead of looking like entries missing after the head read at the end. With no head
    and entries present, the head is looked for once more (the first entry may have been
    written meanwhile) before a missing head is reported.
    """
    head = await _head(session)
    report = await _walk(session, head, batch)
    if not report.ok and report.reason == _NO_HEAD:
        head = await _head(session)
        report = await _walk(session, head, batch)
    if report.ok and head is not None:
        report = await _nothing_beyond(session, head, report)
    return report


async def _nothing_beyond(session: AsyncSession, head: tuple[int, str], report: ChainReport) -> ChainReport:
    """An entry past the head is either one a writer added since (the head has moved on
    with it: read it again) or one the head was moved back from to hide it."""
    beyond = (await session.execute(select(func.min(col(AuditEntry.seq))).where(col(AuditEntry.seq) > head[0])
                                    )).scalar_one_or_none()
    if beyond is None:
        return report
    now = await _head(session)
    if now is not None and now[0] >= beyond:
        return report
    return ChainReport(False, report.entries, beyond, f"entry #{beyond} lies beyond the chain's head "
                                                     f"(#{now[0] if now else head[0]}): the head was moved back "
                                                     "or entries were written outside the service")


_NO_HEAD = "the chain's head row is missing: entries after the last present one cannot be checked"


async def _head(session: AsyncSession) -> tuple[int, str] | None:
    row = (await session.execute(select(col(AuditHead.seq), col(AuditHead.hash))
                                 .where(col(AuditHead.id) == 1))).first()
    return (row[0], row[1]) if row is not None else None


async def _walk(session: AsyncSession, head: tuple[int, str] | None, batch: int) -> ChainReport:
    prev_hash, expected_seq, count, last = GENESIS, 1, 0, 0
    decoders = _decoders(session)
    while True:
        stmt = _STORED.where(_ENTRY.c.seq > last).order_by(_ENTRY.c.seq).limit(batch)
        if head is not None:
            stmt = stmt.where(_ENTRY.c.seq <= head[0])
        rows = [_read(row, decoders) for row in await session.execute(stmt)]
        if not rows:
            break
        for entry in rows:
            problem = _check(entry, expected_seq, prev_hash)
            if problem:
                return ChainReport(False, count, min(entry.seq, expected_seq), problem)
            prev_hash, expected_seq, count, last = entry.hash, entry.seq + 1, count + 1, entry.seq
    if head is None and count:
        return ChainReport(False, count, last + 1, _NO_HEAD)
    if head is not None and head != (last, prev_hash):
        return ChainReport(False, count, last + 1, f"entries after #{last} are missing (head is #{head[0]})")
    return ChainReport(True, count)


def _check(entry: StoredEntry | DamagedEntry, expected_seq: int, prev_hash: str) -> str:
    if entry.seq != expected_seq:
        return f"entry #{expected_seq} is missing (next present is #{entry.seq})"
    if isinstance(entry, DamagedEntry):
        return entry.reason
    if entry.prev_hash != prev_hash:
        return f"entry #{entry.seq} does not continue the chain (previous hash differs)"
    if entry_hash(entry) != entry.hash:
        return f"entry #{entry.seq} was altered after it was written (hash mismatch)"
    return ""
