"""The relay's logic: plan a leased batch, then record what the server answered.

Planning and recording run on the worker's event loop next to the SMTP senders; their
loops give the loop a turn every few events: a reply that arrives meanwhile is read
only after the next stretch of this work, and each message waits for three replies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from service.documents.blobs import blob_path as documents_blob_path
from service.outbox.models import OutboxEvent

from . import repository as repo
from .audit_hook import audit_append
from .config import MailConfig
from .fields import template_fields
from .messages import Attachment, fits_attachment, message_id_for, unaddressable
from .metrics import MAIL_DEFERRED, MAIL_FAILED, MAIL_SENT
from .rows import ClaimedEvent, EventContext

__all__ = ["Job", "Outcome", "Recorded", "Recipient", "apply_outcomes", "backoff_delay", "plan_batch"]

log = logging.getLogger(__name__)
_OPEN = ("pending", "deferred")
_YIELD_EVERY = 8  # events planned or recorded between two turns of the event loop (~100 µs)


class Due(NamedTuple):
    """A recipient to send to in this round."""

    id: str
    address: str
    message_id: str
    without_attachment: bool


@dataclass(slots=True)
class Recipient:
    """A ``mail_recipient`` row as read when the event was leased, or to be written (``new``).

    While the lease is held no other worker writes these rows, so the outcome is
    computed from this copy instead of reading them again (one query less per batch).
    """

    id: str
    address: str
    message_id: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_code: int
    last_reply: str
    without_attachment: bool
    sent_at: datetime | None
    created_at: datetime
    new: bool = False  # first seen in this round: inserted when its outcome is recorded

    def copy(self) -> Recipient:
        return Recipient(self.id, self.address, self.message_id, self.state, self.attempts, self.next_attempt_at,
                         self.last_code, self.last_reply, self.without_attachment, self.sent_at, self.created_at,
                         self.new)


@dataclass(slots=True)
class Job:
    """One leased event: its context, template fields, all its recipients and those due now."""

    ctx: EventContext
    fields: dict[str, str]
    due: list[Due]
    attachment: Attachment | None
    recipients: list[Recipient] = field(default_factory=list)


class Outcome(NamedTuple):
    """The server's last word about one recipient in this round."""

    recipient_id: str
    address: str
    code: int
    reply: str
    stage: str
    without_attachment: bool = False


def backoff_delay(attempts: int, config: MailConfig) -> float:
    """Exponential backoff with jitter (between half and all of the step), capped."""
    step = min(config.backoff_max_s, config.backoff_base_s * 2 ** max(attempts - 1, 0))
    return float(step * random.uniform(0.5, 1.0))


def blob_path(config: MailConfig, sha: str) -> Path:
    """Where the core's blob store keeps the file ``sha``."""
    return documents_blob_path(config.data_dir / "blobs", sha)


async def plan_batch(
    session: AsyncSession, events: Sequence[ClaimedEvent], config: MailConfig, now: datetime
) -> list[Job]:
    """Load contexts in bulk; an event seen for the first time gets one recipient per mailbox.

    Those recipients are written with their first outcome (``apply_outcomes``), not here.
    """
    contexts = await repo.event_contexts(session, events)
    # Recipients are written with an event's first recorded attempt: none before.
    existing = await repo.recipient_rows(session, [e.id for e in events if e.attempts > 0])
    mailboxes = {ctx.event.id: _mailboxes(ctx) for ctx in contexts if ctx.event.id not in existing}
    ids = iter(new_ids(sum(len(m) for m in mailboxes.values())))
    jobs = []
    for n, ctx in enumerate(contexts, 1):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a turn of the event loop for the senders (see the module doc)
        rows = existing.get(ctx.event.id)
        if rows:
            recipients = [Recipient(*r) for r in rows]
        else:
            recipients = _new_recipients(ctx, mailboxes.get(ctx.event.id, []), ids, config, now)
        due = [Due(r.id, r.address, r.message_id, r.without_attachment)
               for r in recipients if r.state in _OPEN and r.next_attempt_at <= now]
        fields = template_fields(ctx, config.public_base_url)
        jobs.append(Job(ctx, fields, due, _attachment(ctx, config), recipients))
    return jobs


def _mailboxes(ctx: EventContext) -> list[str]:
    return list(dict.fromkeys(a.strip() for a in ctx.mailboxes if a.strip()))


def _new_recipients(
    ctx: EventContext, addresses: list[str], ids: Iterator[str], config: MailConfig, now: datetime
) -> list[Recipient]:
    domain = config.message_id_domain
    recipients = []
    for a in addresses:
        refused = unaddressable(a)
        recipients.append(Recipient(next(ids), a, message_id_for(ctx.event.id, a, domain),
                                    "failed" if refused else "pending", 0, now, 0, refused, False, None, now, new=True))
    return recipients


def new_ids(count: int) -> list[str]:
    """``count`` ids for new rows of the mail tables: the UUIDv7 layout (RFC 9562), as 32 hex digits.

    48 bits of Unix milliseconds, then 74 random bits, all from one ``os.urandom`` call (one
    system call per batch, not per row). Rows written together get neighbouring keys, so a
    batch's inserts touch the last pages of the primary key instead of one random page per
    row: fewer pages written at commit and copied at the next checkpoint. The random part
    keeps them unguessable.
    """
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    pool = bytearray(os.urandom(10 * count))
    for at in range(0, 10 * count, 10):
        pool[at] = (pool[at] & 0x0F) | 0x70  # version 7
        pool[at + 2] = (pool[at + 2] & 0x3F) | 0x80  # RFC 9562 variant
    return [(stamp + pool[at : at + 10]).hex() for at in range(0, 10 * count, 10)]


def _attachment(ctx: EventContext, config: MailConfig) -> Attachment | None:
    doc = ctx.document
    if not (config.attach_pdf and doc and ctx.event.kind == "arrival"):
        return None
    if not fits_attachment(doc.size, config.max_message_bytes):
        return None
    return Attachment(blob_path(config, doc.sha256), doc.filename, doc.size)


@dataclass(slots=True)
class Recorded:
    """What a recording transaction changed; ``publish`` the metrics once it is committed."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def publish(self) -> None:
        counters = {"sent": MAIL_SENT, "failed": MAIL_FAILED, "deferred": MAIL_DEFERRED}
        for (state, kind), n in self.counts.items():
            counters[state].labels(kind).inc(n)


async def apply_outcomes(
    session: AsyncSession, jobs: Sequence[Job], outcomes: Sequence[Outcome], *, owner: str, config: MailConfig,
    now: datetime,
) -> Recorded:
    """Record attempts, move recipients and events on, release the leases (flush only).

    Works on copies of the jobs' recipients, so a failed transaction can be tried again.
    """
    by_recipient = {o.recipient_id: o for o in outcomes}
    attempt_ids = iter(new_ids(len(by_recipient)))
    recorded = Recorded()
    releases: list[dict[str, object]] = []
    sent: list[str] = []
    attempts: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    added: list[dict[str, object]] = []
    for n, job in enumerate(jobs, 1):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a turn of the event loop for the senders (see the module doc)
        event = job.ctx.event
        rows = [r.copy() for r in job.recipients]
        failed = []
        for r in rows:
            outcome = by_recipient.get(r.id)
            if outcome is not None:
                attempts.append(_attempt(next(attempt_ids), event.id, outcome, owner, now))
                _apply_one(r, outcome, config, now)
                recorded.counts[r.state, event.kind] = recorded.counts.get((r.state, event.kind), 0) + 1
                if r.state == "failed":
                    failed.append(r)
            elif r.new and r.state == "failed":  # an address no message can carry: reported once
                failed.append(r)
            if r.new:  # also when not attempted (stopping): the next round must find it
                added.append(_new_row(event.id, r, now))
            elif outcome is not None:
                changed.append(_recipient_values(r, now))
        values = _event_values(event, rows, now)
        if values["state"] == "sent":
            sent.append(event.id)
        else:
            releases.append(values)
        if failed:
            await _report_failure(session, job, failed, now)
    await repo.upsert_recipients(session, added)
    await repo.update_recipients(session, changed)
    await repo.insert_attempts(session, attempts)
    await repo.release_sent(session, owner, sent, now)
    await repo.release_events(session, owner, releases)
    return recorded


def _attempt(attempt_id: str, event_id: str, o: Outcome, owner: str, now: datetime) -> dict[str, object]:
    return {"id": attempt_id, "event_id": event_id, "address": o.address, "at": now, "stage": o.stage,
            "code": o.code, "reply": o.reply[:1000], "worker": owner[:100]}


def _new_row(event_id: str, r: Recipient, now: datetime) -> dict[str, object]:
    return {"id": r.id, "event_id": event_id, "address": r.address, "message_id": r.message_id, "state": r.state,
            "attempts": r.attempts, "next_attempt_at": r.next_attempt_at, "last_code": r.last_code,
            "last_reply": r.last_reply, "without_attachment": r.without_attachment, "sent_at": r.sent_at,
            "created_at": r.created_at, "updated_at": now}


def _recipient_values(r: Recipient, now: datetime) -> dict[str, object]:
    return {"rid": r.id, "state": r.state, "attempts": r.attempts, "next_at": r.next_attempt_at,
            "code": r.last_code, "reply": r.last_reply, "without": r.without_attachment, "sent_at": r.sent_at,
            "updated": now}


_SESSION_STAGES = frozenset({"CONNECT", "EHLO", "STARTTLS", "AUTH", "CONFIG"})


def _apply_one(r: Recipient, o: Outcome, config: MailConfig, now: datetime) -> None:
    """Move one recipient on from its outcome: sent (2xx), failed (5xx, lifetime over) or deferred."""
    r.attempts += 1
    r.last_code, r.last_reply = o.code, o.reply[:1000]
    r.without_attachment = r.without_attachment or o.without_attachment
    if 200 <= o.code < 300:
        r.state, r.sent_at = "sent", now
        return
    retry_at = now + timedelta(seconds=backoff_delay(r.attempts, config))
    # A refusal before any recipient was named (the relay's login, TLS, greeting) is about the
    # relay, not this address: a rotated password must not fail every notice of the window.
    permanent = o.code >= 500 and o.stage not in _SESSION_STAGES
    if permanent or retry_at > r.created_at + timedelta(seconds=config.lifetime_s):
        if not permanent:
            r.last_reply = f"gave up after {r.attempts} attempts; last answer: {o.code} {o.reply}"[:1000]
        r.state = "failed"
        return
    r.state, r.next_attempt_at = "deferred", retry_at


def _event_values(event: ClaimedEvent, rows: list[Recipient], now: datetime) -> dict[str, object]:
    """The event's state follows its recipients: open → deferred, else failed or sent."""
    values: dict[str, object] = {"eid": event.id, "attempts": event.attempts + 1, "updated": now,
                                 "next_at": event.next_attempt_at}
    open_rows = [r for r in rows if r.state in _OPEN]
    bad = [r for r in rows if r.state != "sent"]
    values["last_error"] = "; ".join(f"{r.address}: {r.last_code} {r.last_reply}" for r in bad)[:2000]
    if not rows:
        values.update(state="failed", last_error="the unit has no mailboxes")
    elif open_rows:
        values.update(state="deferred", next_at=min(r.next_attempt_at for r in open_rows))
    elif any(r.state == "failed" for r in rows):
        values["state"] = "failed"
    else:
        values["state"] = "sent"
    return values


async def _report_failure(session: AsyncSession, job: Job, failed: list[Recipient], now: datetime) -> None:
    """Audit the permanent failure and tell the sending unit's clerk (not for reports themselves)."""
    event, doc = job.ctx.event, job.ctx.document
    data = {"kind": event.kind, "addresses": [r.address for r in failed],
            "replies": [f"{r.last_code} {r.last_reply}" for r in failed]}
    await audit_append(session, action="mail.failed", unit_id=event.unit_id, document_id=event.document_id,
                       object_id=event.id, data=data)
    if event.kind == "mail_failed" or doc is None:
        return
    session.add(OutboxEvent(
        kind="mail_failed", unit_id=doc.sender_unit_id, document_id=doc.id, priority=event.priority,
        created_at=now, updated_at=now, next_attempt_at=now,
        payload={**job.fields, "failed_unit_name": job.fields["recipient_unit"],
                 "failed_addresses": ", ".join(data["addresses"]), "failed_reply": "; ".join(data["replies"])},
    ))
