"""The relay's logic: plan a leased batch, then record what the server answered."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from service.outbox.models import OutboxEvent
from service.storage.types import new_id

from . import repository as repo
from .audit_hook import audit_append
from .config import MailConfig
from .fields import EventContext, template_fields
from .messages import Attachment, fits_attachment, message_id_for
from .metrics import MAIL_DEFERRED, MAIL_FAILED, MAIL_SENT
from .models import MailAttempt, MailRecipient

__all__ = ["Job", "Outcome", "apply_outcomes", "backoff_delay", "plan_batch"]

log = logging.getLogger(__name__)
_OPEN = ("pending", "deferred")


@dataclass(frozen=True, slots=True)
class Due:
    """A recipient to send to in this round."""

    id: str
    address: str
    message_id: str
    without_attachment: bool


@dataclass(slots=True)
class Job:
    """One leased event: its context, template fields and the recipients due now."""

    ctx: EventContext
    fields: dict[str, str]
    due: list[Due]
    attachment: Attachment | None


@dataclass(frozen=True, slots=True)
class Outcome:
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
    return step * random.uniform(0.5, 1.0)


def blob_path(config: MailConfig, sha: str) -> Path:
    """Same layout as the core's ``service.documents.blob_path``."""
    return config.data_dir / "blobs" / sha[:2] / sha[2:4] / sha


async def plan_batch(session: AsyncSession, events: Sequence[OutboxEvent], config: MailConfig, now: datetime) -> list[Job]:
    """Load contexts in bulk and create the (event, address) rows on first sight."""
    contexts = await _contexts(session, events)
    recipients = await repo.recipients_by_event(session, [e.id for e in events])
    jobs, new_rows = [], []
    for ctx in contexts:
        rows = recipients.get(ctx.event.id)
        if rows is None:
            fresh = _new_recipients(ctx, config, now)
            new_rows += fresh
            due = [Due(r["id"], r["address"], r["message_id"], False) for r in fresh]
        else:
            due = [Due(r.id, r.address, r.message_id, r.without_attachment)
                   for r in rows if r.state in _OPEN and r.next_attempt_at <= now]
        jobs.append(Job(ctx, template_fields(ctx, config.public_base_url), due, _attachment(ctx, config)))
    await repo.insert_rows(session, MailRecipient, new_rows)
    return jobs


async def _contexts(session: AsyncSession, events: Sequence[OutboxEvent]) -> list[EventContext]:
    docs = await repo.documents_by_id(session, (e.document_id for e in events))
    deliveries = await repo.deliveries_by_id(session, (e.delivery_id for e in events))
    unit_ids = [e.unit_id for e in events] + [d.sender_unit_id for d in docs.values()]
    units = await repo.units_by_id(session, unit_ids + [d.recipient_unit_id for d in deliveries.values()])
    verdicts = await repo.verdicts_by_document(session, docs)
    out = []
    for e in events:
        doc = docs.get(e.document_id or "")
        delivery = deliveries.get(e.delivery_id or "")
        out.append(EventContext(
            event=e, unit=units.get(e.unit_id), document=doc,
            sender_unit=units.get(doc.sender_unit_id) if doc else None, delivery=delivery,
            delivery_unit=units.get(delivery.recipient_unit_id) if delivery else None,
            verdict=verdicts.get(doc.id) if doc else None,
        ))
    return out


def _new_recipients(ctx: EventContext, config: MailConfig, now: datetime) -> list[dict[str, object]]:
    addresses = dict.fromkeys(a.strip() for a in (ctx.unit.mailboxes if ctx.unit else []) if a.strip())
    return [
        {"id": new_id(), "event_id": ctx.event.id, "address": a, "state": "pending", "attempts": 0,
         "message_id": message_id_for(ctx.event.id, a, config.message_id_domain), "next_attempt_at": now,
         "last_code": 0, "last_reply": "", "without_attachment": False, "sent_at": None,
         "created_at": now, "updated_at": now}
        for a in addresses
    ]


def _attachment(ctx: EventContext, config: MailConfig) -> Attachment | None:
    doc = ctx.document
    if not (config.attach_pdf and doc and ctx.event.kind == "arrival"):
        return None
    if not fits_attachment(doc.size, config.max_message_bytes):
        return None
    return Attachment(blob_path(config, doc.sha256), doc.filename, doc.size)


async def apply_outcomes(
    session: AsyncSession, jobs: Sequence[Job], outcomes: Sequence[Outcome], *, owner: str, config: MailConfig,
    now: datetime,
) -> None:
    """Record attempts, move recipients and events on, release the leases."""
    by_recipient = {o.recipient_id: o for o in outcomes}
    rows = await repo.recipients_by_event(session, [j.ctx.event.id for j in jobs])
    releases: list[dict[str, object]] = []
    attempts: list[dict[str, object]] = []
    for job in jobs:
        event = job.ctx.event
        event_rows = rows.get(event.id, [])
        failed = [r for r in event_rows
                  if r.id in by_recipient and _apply_one(attempts, r, by_recipient[r.id], event, owner, config, now)]
        releases.append(_event_values(event, event_rows, now))
        if failed:
            await _report_failure(session, job, failed, now)
    await session.flush()
    await repo.insert_rows(session, MailAttempt, attempts)
    await repo.release_events(session, owner, releases)


def _apply_one(
    attempts: list[dict[str, object]], r: MailRecipient, o: Outcome, event: OutboxEvent, owner: str,
    config: MailConfig, now: datetime,
) -> bool:
    """Update one recipient from its outcome; True if it just failed for good."""
    attempts.append({"id": new_id(), "event_id": event.id, "address": o.address, "at": now, "stage": o.stage,
                     "code": o.code, "reply": o.reply[:1000], "worker": owner[:100]})
    r.attempts += 1
    r.last_code, r.last_reply, r.updated_at = o.code, o.reply[:1000], now
    r.without_attachment = r.without_attachment or o.without_attachment
    if 200 <= o.code < 300:
        r.state, r.sent_at = "sent", now
        MAIL_SENT.labels(event.kind).inc()
        return False
    retry_at = now + timedelta(seconds=backoff_delay(r.attempts, config))
    if o.code >= 500 or retry_at > r.created_at + timedelta(seconds=config.lifetime_s):
        if o.code < 500:
            r.last_reply = f"gave up after {r.attempts} attempts; last answer: {o.code} {o.reply}"[:1000]
        r.state = "failed"
        MAIL_FAILED.labels(event.kind).inc()
        return True
    r.state, r.next_attempt_at = "deferred", retry_at
    MAIL_DEFERRED.labels(event.kind).inc()
    return False


def _event_values(event: OutboxEvent, rows: list[MailRecipient], now: datetime) -> dict[str, object]:
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


async def _report_failure(session: AsyncSession, job: Job, failed: list[MailRecipient], now: datetime) -> None:
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
