"""The worker's pipeline: one claimer, one sender per SMTP connection, one recorder.

    claimer ──▶ priority queue of built messages ──▶ sender × pool_size ──▶ finished jobs ──▶ recorder

* The **claimer** leases a batch (urgent first) whenever fewer than ``prefetch``
  messages are queued, renders and builds them, and queues them. The queue is small
  (about two batches), so an urgent event claimed now waits behind at most the
  messages already on the wire, and jumps ahead of every queued normal one.
* Each **sender** owns one connection of the pool and sends one message after the
  other, so every connection stays busy while the database work happens elsewhere.
* Every job whose messages are all answered is recorded by the claimer's next claim,
  in the transaction that leases the next batch (one transaction per batch). The
  **recorder** writes the ones that cannot wait for it (urgent, 0.1 s without a claim,
  stopping) and any whose write failed, and renews the lease of every job still in
  flight each ``lease_s / 3``; a job whose lease another worker has taken is not sent
  further.
* On stop, senders finish the message in hand; queued messages are not sent and their
  events are handed back (due at once, for any worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .messages import OutgoingMessage
from .service import Job, Outcome

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Item", "Pipeline", "wait_first", "wait_for_stop"]

log = logging.getLogger(__name__)

_STOP_FIRST = -(10**9)  # queue key of the senders' stop marker: ahead of any message
_CLOSING_WRITE_TRIES = 3
# A finished normal job waits at most this long, or until two batches have finished,
# for others to share its transaction (a transaction costs about as much as recording
# 20 jobs); urgent ones never wait.
_RECORD_WAIT_S = 0.1
# Messages rendered and built between two turns of the event loop: one (~50 µs). Replies
# that arrive meanwhile wait for the turn, and so does the relay: four messages at a time
# (~0.2 ms a stretch) drained 5 % fewer messages a second (A/B, ten rounds).
_CHUNK = 1


@dataclass(slots=True)
class Item:
    """One message to send: a due recipient of a leased job, built ahead when cheap to hold."""

    job: Job
    recipient_id: str
    out: OutgoingMessage
    raw: bytes | None  # None: built at send time (attachments are too big to queue)


@dataclass(eq=False, slots=True)
class _Flight:
    """A leased job between its claim and its record."""

    job: Job
    waiting: int
    outcomes: list[Outcome] = field(default_factory=list)
    dropped: int = 0  # messages not attempted: lease lost, or the worker stopping
    lost: bool = False  # another worker holds the lease now

    @property
    def event_id(self) -> str:
        return self.job.ctx.event.id


class Pipeline:
    """One run of a worker's pipeline; ``run`` returns once ``stop`` is set and all is recorded."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        config = worker.config
        self._senders = max(1, config.pool_size)
        self._prefetch = max(config.batch_size, 2 * self._senders)
        self._queue: asyncio.PriorityQueue[tuple[int, int, Item | None]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._room = asyncio.Event()
        self._room.set()
        self._halt = asyncio.Event()
        self._flights: dict[str, _Flight] = {}
        self._finished: list[_Flight] = []
        self._finished_since = 0.0
        self._urgent_finished = False
        self._wake_recorder = asyncio.Event()
        self._closing = False
        self.first_claim = asyncio.Event()  # set once the claimer has asked for due events

    async def run(self, stop: asyncio.Event) -> None:
        claimer = asyncio.create_task(self._claimer(), name="mail-claimer")
        senders = [asyncio.create_task(self._sender(), name=f"mail-sender-{i}") for i in range(self._senders)]
        recorder = asyncio.create_task(self._recorder(), name="mail-recorder")
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopped, claimer, recorder, *senders], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await self._shut_down(claimer, senders, recorder)
        for task in (claimer, recorder, *senders):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _shut_down(self, claimer: asyncio.Task[None], senders: list[asyncio.Task[None]],
                         recorder: asyncio.Task[None]) -> None:
        self._halt.set()
        await asyncio.gather(claimer, return_exceptions=True)
        for _ in senders:
            self._queue.put_nowait((_STOP_FIRST, next(self._order), None))
        await asyncio.gather(*senders, return_exceptions=True)
        while not self._queue.empty():
            _, _, item = self._queue.get_nowait()
            if item is not None:
                self._settle(self._flights[item.job.ctx.event.id], None)
        self._closing = True
        self._wake_recorder.set()
        await asyncio.gather(recorder, return_exceptions=True)

    # ---- claimer ---------------------------------------------------------------------------------

    async def _claimer(self) -> None:
        worker = self._worker
        while not self._halt.is_set():
            await wait_first(self._room, self._halt)
            if self._halt.is_set():
                return
            jobs = await self._claim()
            self.first_claim.set()
            if not jobs:
                await wait_for_stop(self._halt, worker.config.poll_interval_s)
                continue
            await self._enqueue([j for j in jobs if j.ctx.event.id not in self._flights])

    async def _claim(self) -> list[Job]:
        """Lease the next batch, recording the jobs finished meanwhile in the same transaction.

        In steady state a batch is claimed about every ``batch_size`` messages, before the
        recorder's wait is over: one transaction per batch instead of two.
        """
        worker = self._worker
        done = [f for f in self._finished if not f.dropped]
        self._take(done)
        try:
            jobs = await worker.record([f.job for f in done], [o for f in done for o in f.outcomes],
                                       claim=worker.config.batch_size)
        except Exception:  # a database hiccup must not end the worker; it is logged
            log.exception("mail claim (recording %d finished jobs with it) failed; trying again after the poll "
                          "interval", len(done))
            self._give_back(done)
            return []
        for flight in done:
            del self._flights[flight.event_id]
        return jobs

    async def _enqueue(self, jobs: list[Job]) -> None:
        """Render and build the jobs' messages a few at a time, queueing each chunk at once.

        Between chunks the loop serves the senders: one long synchronous stretch for a
        whole batch would hold every connection's next reply waiting.
        """
        flights = [self._flight(job) for job in jobs]
        chunk: list[Item] = []
        for flight in flights:
            chunk += self._items(flight)
            if len(chunk) >= _CHUNK:
                await self._push(chunk)
                chunk = []
        await self._push(chunk)

    def _flight(self, job: Job) -> _Flight:
        flight = self._flights[job.ctx.event.id] = _Flight(job, len(job.due))
        if not job.due:
            self._finish(flight)
        return flight

    def _items(self, flight: _Flight) -> list[Item]:
        try:
            return self._worker.items(flight.job)
        except Exception as exc:  # e.g. a broken template override: deferred, with the reason
            log.exception("cannot render %s", flight.event_id)
            for due in flight.job.due:
                self._settle(flight, Outcome(due.id, due.address, 0, f"cannot render: {exc}", "WORKER"))
            return []

    async def _push(self, items: list[Item]) -> None:
        try:
            await self._worker.prebuild(items)
        except Exception:  # logged; each message is built again, at send time, with its own error
            log.exception("building messages ahead failed")
        for item in items:
            self._queue.put_nowait((-item.out.priority, next(self._order), item))
        if self._queue.qsize() >= self._prefetch:
            self._room.clear()
        await asyncio.sleep(0)  # let the senders take it, and the loop read their replies

    # ---- senders ---------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            _, _, item = await self._queue.get()
            if item is None:
                return
            if self._queue.qsize() < self._prefetch:
                self._room.set()
            flight = self._flights[item.job.ctx.event.id]
            if flight.lost:
                self._settle(flight, None)
                continue
            try:
                outcome = await self._worker.send(item)
            except Exception as exc:  # a bug must not stop the sender: deferred, with the reason
                log.exception("sending %s failed", flight.event_id)
                outcome = Outcome(item.recipient_id, item.out.address, 0, f"worker error: {exc}", "WORKER")
            self._settle(flight, outcome)

    def _settle(self, flight: _Flight, outcome: Outcome | None) -> None:
        if outcome is None:
            flight.dropped += 1
        else:
            flight.outcomes.append(outcome)
        flight.waiting -= 1
        if flight.waiting == 0:
            self._finish(flight)

    def _finish(self, flight: _Flight) -> None:
        first = not self._finished
        if first:
            self._finished_since = time.monotonic()
        self._finished.append(flight)
        self._urgent_finished = self._urgent_finished or flight.job.ctx.event.priority > 0
        if first or self._write_now():  # else the recorder is already waiting for its deadline
            self._wake_recorder.set()

    # ---- recorder --------------------------------------------------------------------------------

    async def _recorder(self) -> None:
        worker = self._worker
        renew_at = time.monotonic() + worker.renew_every_s
        failures = 0
        while not (self._closing and not self._flights):
            wake_at = min(renew_at, self._finished_since + _RECORD_WAIT_S) if self._finished else renew_at
            await wait_first(self._wake_recorder, timeout=max(0.0, wake_at - time.monotonic()))
            self._wake_recorder.clear()
            if time.monotonic() >= renew_at:
                await self._renew()
                renew_at = time.monotonic() + worker.renew_every_s
            if not self._write_now():
                continue
            batch = list(self._finished)
            self._take(batch)
            try:
                await self._write(batch)
                failures = 0
            except Exception:  # the database is away: keep the results and try again
                failures += 1
                log.exception("recording %d mail jobs failed (%d)", len(batch), failures)
                if self._closing and failures >= _CLOSING_WRITE_TRIES:
                    log.error("giving up on %d jobs; their leases run out and they are sent again", len(batch))
                    return
                self._give_back(batch)
                await asyncio.sleep(min(worker.config.poll_interval_s, 1.0))
                self._wake_recorder.set()

    def _take(self, flights: list[_Flight]) -> None:
        """Take these finished flights out of the recorder's list, to be written by the caller."""
        if len(flights) == len(self._finished):
            self._finished, self._urgent_finished = [], False
            return
        taken = set(flights)
        self._finished = [f for f in self._finished if f not in taken]
        self._urgent_finished = any(f.job.ctx.event.priority > 0 for f in self._finished)

    def _give_back(self, flights: list[_Flight]) -> None:
        """Flights whose writing failed: the recorder writes them later (they keep their leases)."""
        if not flights:
            return
        if not self._finished:
            self._finished_since = time.monotonic()
        self._finished[:0] = flights
        self._urgent_finished = self._urgent_finished or any(f.job.ctx.event.priority > 0 for f in flights)
        self._wake_recorder.set()

    def _write_now(self) -> bool:
        """Whether to record the finished jobs now, or let more join them in one transaction."""
        finished = self._finished
        return bool(finished) and (
            self._closing
            or len(finished) >= 2 * self._worker.config.batch_size
            or len(finished) == len(self._flights)  # nothing else in flight
            or self._urgent_finished
            or time.monotonic() - self._finished_since >= _RECORD_WAIT_S
        )

    async def _write(self, batch: list[_Flight]) -> None:
        """Record the attempted jobs, hand back the untouched ones; ``batch`` keeps what is left to do."""
        attempted = [f for f in batch if f.outcomes or not f.dropped]
        if attempted:
            await self._worker.record([f.job for f in attempted], [o for f in attempted for o in f.outcomes])
            self._forget(batch, attempted)
        if batch:
            await self._worker.unlease([f.event_id for f in batch])
            self._forget(batch, list(batch))

    def _forget(self, batch: list[_Flight], done: list[_Flight]) -> None:
        for flight in done:
            del self._flights[flight.event_id]
            batch.remove(flight)

    async def _renew(self) -> None:
        if not self._flights:
            return
        asked = list(self._flights)
        try:
            held = await self._worker.renew(asked)
        except Exception:  # logged; two more renewals come before the lease runs out
            log.exception("lease renewal failed")
            return
        for event_id in asked:
            flight = self._flights.get(event_id)
            if flight is not None and event_id not in held and not flight.lost:
                log.warning("lease on %s was taken over; not sending it further", event_id)
                flight.lost = True


async def wait_first(event: asyncio.Event, other: asyncio.Event | None = None, timeout: float | None = None) -> None:
    """Wait until ``event`` (or ``other``) is set, or ``timeout`` seconds."""
    if event.is_set() or (other is not None and other.is_set()):
        return
    waits = [asyncio.create_task(e.wait()) for e in (event, other) if e is not None]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
