"""The outbox worker: lease due events, send them, record the answers.

Runs embedded in the API process (``start_embedded_worker``) or as its own
process (``docexchange worker``); any number of workers may share one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from service.settings import Settings
from service.storage.db import Database
from service.storage.types import utcnow

from . import repository as repo
from .config import MailConfig
from .errors import MailConfigError, SmtpError
from .messages import OutgoingMessage, build_message
from .overdue import sweep_overdue
from .rendering import TemplateSet
from .service import Job, Outcome, apply_outcomes, plan_batch
from .smime import SmimeSigner
from .smtp import SmtpPool

__all__ = ["Worker", "WorkerHandle", "start_embedded_worker"]

log = logging.getLogger(__name__)


class Worker:
    """Claims batches with a lease; ``pool_size`` lanes overlap database and SMTP work."""

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
        now = utcnow()
        async with self.db.session() as session:
            events = await repo.claim_due(
                session, owner=self.owner, now=now, lease_s=self.config.lease_s, limit=self.config.batch_size
            )
            if not events:
                return 0
            jobs = await plan_batch(session, events, self.config, now)
            await session.commit()
        sent = await asyncio.gather(*(self._send_job(job) for job in jobs))
        async with self.db.session() as session:
            await apply_outcomes(session, jobs, [o for group in sent for o in group], owner=self.owner,
                                 config=self.config, now=utcnow())
            await session.commit()
        return len(events)

    async def drain(self) -> None:
        """Run batches until nothing is due (tests, ``mail`` CLI)."""
        while await self.run_once():
            pass

    async def run(self, stop: asyncio.Event) -> None:
        """Lanes plus the overdue sweep, until ``stop`` is set."""
        tasks = [asyncio.create_task(self._lane(stop)) for _ in range(self.config.pool_size)]
        tasks.append(asyncio.create_task(self._sweeper(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._pool.close()

    async def _lane(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except Exception:  # a database hiccup must not end the worker; it is logged
                log.exception("mail worker batch failed; retrying after the poll interval")
                claimed = 0
            if not claimed:
                await _wait(stop, self.config.poll_interval_s)

    async def _sweeper(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                created = await sweep_overdue(self.db, self.config, utcnow())
                if created:
                    log.info("overdue sweep queued %d reminders", created)
            except Exception:  # logged; the next sweep tries again
                log.exception("overdue sweep failed")
            await _wait(stop, self.config.overdue_sweep_s)

    async def _send_job(self, job: Job) -> list[Outcome]:
        rendered = self._templates.render(job.ctx.event.kind, job.fields)
        messages = [
            OutgoingMessage(job.ctx.event.id, r.address, r.message_id, job.ctx.event.priority, rendered,
                            None if r.without_attachment else job.attachment)
            for r in job.due
        ]
        return list(await asyncio.gather(*(self._send_one(r.id, m) for r, m in zip(job.due, messages, strict=True))))

    async def _send_one(self, recipient_id: str, out: OutgoingMessage) -> Outcome:
        with_attachment = out.attachment is not None
        try:
            try:
                result = await self._deliver(out, with_attachment)
            except SmtpError as error:
                if not (with_attachment and error.smtp_code == 552):
                    raise
                # Too big for the relay: send the notice without the PDF.
                with_attachment = False
                result = await self._deliver(out, with_attachment=False)
        except SmtpError as error:
            dropped = out.attachment is not None and not with_attachment
            return Outcome(recipient_id, out.address, error.smtp_code, error.reply, error.stage, dropped)
        except MailConfigError as error:
            return Outcome(recipient_id, out.address, 0, str(error), "CONFIG")
        return Outcome(recipient_id, out.address, result.code, result.reply, result.stage,
                       out.attachment is not None and not with_attachment)

    async def _deliver(self, out: OutgoingMessage, with_attachment: bool) -> _Result:
        raw = await self._build(out, with_attachment)
        results = await self._pool.send(self.config.sender, [out.address], raw)
        return _Result(results[0].code, results[0].reply, results[0].stage)

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


@dataclass(frozen=True, slots=True)
class _Result:
    code: int
    reply: str
    stage: str


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


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
