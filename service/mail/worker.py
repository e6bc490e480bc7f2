"""The outbox worker: lease due events, send them, record the answers.

Runs embedded in the API process (``start_embedded_worker``) or as its own
process (``docexchange worker``); any number of workers may share one database.
``run`` is a pipeline (:mod:`service.mail.pipeline`); ``run_once`` does one batch
step by step (tests, ``mail`` CLI). Both use the steps below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from service.settings import Settings
from service.storage.db import Database
from service.storage.types import utcnow

from . import repository as repo
from .config import MailConfig
from .errors import MailConfigError, SmtpError
from .messages import OutgoingMessage, build_message
from .overdue import sweep_overdue
from .pipeline import Item, Pipeline, wait_first, wait_for_stop
from .rendering import TemplateSet
from .service import Job, Outcome, apply_outcomes, plan_batch
from .smime import SmimeSigner
from .smtp import RecipientResult, SmtpPool

__all__ = ["Worker", "WorkerHandle", "start_embedded_worker"]

log = logging.getLogger(__name__)


class Worker:
    """Leases due events and sends them over ``pool_size`` reused SMTP connections."""

    def __init__(self, db: Database, config: MailConfig, templates: TemplateSet, signer: SmimeSigner | None) -> None:
        self.db, self.config = db, config
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._templates, self._signer = templates, signer
        self._pool = SmtpPool(config)

    @classmethod
    async def create(cls, db: Database, config: MailConfig) -> Worker:
        """Loads templates and the S/MIME key. Raises MailConfigError."""
        templates = await TemplateSet.load(config.templates_dir)
        signer = None
        if config.smime_cert is not None and config.smime_key is not None:
            signer = await asyncio.to_thread(
                SmimeSigner.from_files, config.smime_cert, config.smime_key, config.smime_key_passphrase
            )
        return cls(db, config, templates, signer)

    async def run_once(self) -> int:
        """One batch: claim, send, record. Returns how many events were claimed."""
        jobs = await self.claim(self.config.batch_size)
        if not jobs:
            return 0
        renewer = asyncio.create_task(self._renew_while_sending([j.ctx.event.id for j in jobs]))
        try:
            items = [item for job in jobs for item in self.items(job)]
            await self.prebuild(items)
            outcomes = await asyncio.gather(*(self.send(item) for item in items))
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        await self.record(jobs, outcomes)
        return len(jobs)

    async def drain(self) -> None:
        """Run batches until nothing is due (tests, ``mail`` CLI)."""
        while await self.run_once():
            pass

    async def run(self, stop: asyncio.Event) -> None:
        """The pipeline plus the overdue sweep, until ``stop`` is set."""
        pipeline = Pipeline(self)
        sweeper = asyncio.create_task(self._sweeper(stop, pipeline.first_claim))
        try:
            await pipeline.run(stop)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await self._pool.close()

    # ---- the steps ---------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due events (urgent first) and plan them, in one transaction."""
        async with self.db.session() as session:
            jobs = await self._claim(session, limit)
            await session.commit()
        return jobs

    async def _claim(self, session: AsyncSession, limit: int) -> list[Job]:
        now = utcnow()
        events = await repo.claim_due(session, owner=self.owner, now=now, lease_s=self.config.lease_s, limit=limit)
        return await plan_batch(session, events, self.config, now) if events else []

    def items(self, job: Job) -> list[Item]:
        """The job's messages, rendered once per job (not built yet)."""
        if not job.due:
            return []
        rendered = self._templates.render(job.ctx.event.kind, job.fields)
        event = job.ctx.event
        return [Item(job, r.id, OutgoingMessage(event.id, r.address, r.message_id, event.priority, rendered,
                                                None if r.without_attachment else job.attachment), None)
                for r in job.due]

    async def prebuild(self, items: Sequence[Item]) -> None:
        """Build the messages without attachment ahead: inline (tens of µs), S/MIME in one thread hop.

        Messages with a PDF are built at send time, so the queue never holds megabytes.
        """
        cheap = [i for i in items if i.out.attachment is None]
        if self._signer is None:
            for item in cheap:
                item.raw = build_message(item.out, self.config.mail_from, None, with_attachment=False)
        elif cheap:
            raws = await asyncio.to_thread(self._build_all, [i.out for i in cheap])
            for item, raw in zip(cheap, raws, strict=True):
                item.raw = raw

    def _build_all(self, outs: list[OutgoingMessage]) -> list[bytes]:
        return [build_message(out, self.config.mail_from, self._signer, with_attachment=False) for out in outs]

    async def send(self, item: Item) -> Outcome:
        """Send one message; a 552 with the PDF attached is tried again without it."""
        out = item.out
        with_attachment = out.attachment is not None
        try:
            try:
                result = await self._deliver(out, with_attachment, item.raw)
            except SmtpError as error:
                if not (with_attachment and error.smtp_code == 552):
                    raise
                # Too big for the relay: send the notice without the PDF.
                with_attachment = False
                result = await self._deliver(out, with_attachment=False)
        except SmtpError as error:
            dropped = out.attachment is not None and not with_attachment
            return Outcome(item.recipient_id, out.address, error.smtp_code, error.reply, error.stage, dropped)
        except MailConfigError as error:
            return Outcome(item.recipient_id, out.address, 0, str(error), "CONFIG")
        return Outcome(item.recipient_id, out.address, result.code, result.reply, result.stage,
                       out.attachment is not None and not with_attachment)

    async def record(self, jobs: Sequence[Job], outcomes: Sequence[Outcome], *, claim: int = 0) -> list[Job]:
        """Write the outcomes of finished jobs and release their leases, in one transaction.

        With ``claim``, the same transaction then leases up to that many due events, as
        ``claim`` does, and returns their jobs: one transaction instead of two.
        """
        async with self.db.session() as session:
            recorded = await apply_outcomes(session, jobs, outcomes, owner=self.owner, config=self.config,
                                            now=utcnow())
            claimed = await self._claim(session, claim) if claim > 0 else []
            await session.commit()
        recorded.publish()
        return claimed

    async def renew(self, event_ids: Sequence[str]) -> set[str]:
        """Extend the lease of events still being worked on; returns those this worker still holds."""
        async with self.db.session() as session:
            held = await repo.renew_leases(session, owner=self.owner, ids=event_ids, now=utcnow(),
                                           lease_s=self.config.lease_s)
            await session.commit()
        return held

    async def unlease(self, event_ids: Sequence[str]) -> None:
        """Give back events claimed but not attempted (stopping), so any worker takes them at once."""
        async with self.db.session() as session:
            await repo.unlease_events(session, owner=self.owner, ids=event_ids, now=utcnow())
            await session.commit()

    @property
    def renew_every_s(self) -> float:
        """A third of the lease: two renewals may fail before another worker may take the events."""
        return self.config.lease_s / 3

    async def _renew_while_sending(self, event_ids: list[str]) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.renew(event_ids)
            except Exception:  # logged; the next renewal tries again before the lease runs out
                log.exception("lease renewal failed")

    async def _sweeper(self, stop: asyncio.Event, first_claim: asyncio.Event) -> None:
        # Mail already due goes first: the first sweep waits for the pipeline's first claim
        # (on SQLite both need the one connection).
        await wait_first(first_claim, stop)
        while not stop.is_set():
            try:
                created = await sweep_overdue(self.db, self.config, utcnow())
                if created:
                    log.info("overdue sweep queued %d reminders", created)
            except Exception:  # logged; the next sweep tries again
                log.exception("overdue sweep failed")
            await wait_for_stop(stop, self.config.overdue_sweep_s)

    async def _deliver(self, out: OutgoingMessage, with_attachment: bool, raw: bytes | None = None) -> RecipientResult:
        if raw is None:
            raw = await self._build(out, with_attachment)
        [result] = await self._pool.send(self.config.sender, [out.address], raw)
        return result

    async def _build(self, out: OutgoingMessage, with_attachment: bool) -> bytes:
        if not ((with_attachment and out.attachment) or self._signer):
            return build_message(out, self.config.mail_from, None, with_attachment=False)
        try:
            return await asyncio.to_thread(build_message, out, self.config.mail_from, self._signer,
                                           with_attachment=with_attachment)
        except OSError as exc:  # the blob is missing or unreadable: notify without it
            log.warning("attachment of %s unreadable (%s); sending without it", out.event_id, exc)
            return await asyncio.to_thread(build_message, out, self.config.mail_from, self._signer,
                                           with_attachment=False)

    async def close(self) -> None:
        await self._pool.close()


class WorkerHandle:
    """A running worker task; ``await handle.stop()`` ends it cleanly."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(worker.run(self._stop), name="docex-mail-worker")

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def start_embedded_worker(db: Database, settings: Settings) -> WorkerHandle:
    """Start the worker inside the API process. Raises MailConfigError on bad settings."""
    worker = await Worker.create(db, MailConfig.from_settings(settings))
    if not worker.config.host:
        log.warning("DOCEX_SMTP_HOST is not set: notifications will wait, deferred, until it is")
    return WorkerHandle(worker)
