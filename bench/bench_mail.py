"""Mail relay benchmark: outbox drain rate vs raw aiosmtplib, and urgent latency under load.

    python bench/bench_mail.py [--messages 2000] [--connections 4] [--batch 50] [--reps 5]
                               [--backlog 10000] [--urgent 5] [--doc docs/mail.md]

A real aiosmtpd submission server (STARTTLS + AUTH required, like Zimbra's 587)
runs in a child process on loopback; its handler only counts messages and bytes.

* **baseline** (raw): aiosmtplib alone, ``connections`` tasks each owning one
  connection (connect + STARTTLS + AUTH inside the timed part, as for the worker),
  taking messages from a shared queue and calling MAIL (with SIZE), RCPT, DATA: the
  commands the worker's transport sends, without pool, database or bookkeeping.
  ``sendmail()`` (same round trips, but it parses addresses and normalises line ends
  twice: ~40 % more client CPU) is measured too, for reference only.
* **worker**: ``Worker.run`` (the pipeline, ``pool_size = connections``) draining
  ``messages`` events (one mailbox each) from a fresh SQLite outbox, until every event
  is recorded ``sent`` (committed).
* The raw messages are the worker's own: built by ``Worker.items`` + ``prebuild`` from
  the same events (only the Date header differs); the server's byte counts of the two
  phases are printed to show it.
* ``reps`` repetitions of the three, the order rotating each time, a fresh database
  copy each time; the median of the per-repetition ratios is the result, min–max its
  spread (the machine is shared: single runs swing by ±50 %).
* Each phase starts after an untimed ``gc.collect()``: without it, the objects the setup
  left (seeding, building the raw messages) made a full collection (~70 ms) fall into
  some worker phase or other; the raw phases never trigger one. Each phase still pays
  for the collections its own allocations cause. Once the modules are loaded, before the
  first phase, ``gc.freeze()`` takes them out of the collector's walks, as the service's
  processes do after their start (``docexchange worker``, the API).
* All three phases run on one event loop, uvloop by default: the loop the service runs the
  worker on (the API's embedded worker under uvicorn, and ``docexchange worker``).
  ``--loop asyncio`` measures both sides on asyncio's own loop instead.
* Urgent latency: a worker drains ``backlog`` normal events; once it is busy, ``urgent``
  priority-3 events are enqueued one after the other and each is timed from its commit
  to its ``sent`` row (polled every 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from service.mail import MailConfig, Worker  # noqa: E402
from service.mail.service import Job, Outcome  # noqa: E402
from service.mail.smtp import make_tls_context  # noqa: E402
from service.outbox.models import OutboxEvent  # noqa: E402
from service.storage.db import Database  # noqa: E402
from service.storage.types import utcnow  # noqa: E402
from tests.mail.conftest import MAIL_FROM, add_document, add_unit, migrated  # noqa: E402
from tests.mail.pki import make_pki  # noqa: E402
from tests.mail.smtpserver import PASSWORD, USERNAME, SubmissionServer, free_port  # noqa: E402

# ---- the server (child process) ---------------------------------------------------------------


class _CountingHandler:
    """Accepts everything; counts messages and bytes (no storage: the same cost for both sides)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")  # type: ignore[attr-defined]
        return "250 2.0.0 Ok: queued"


def serve(folder: Path, port: int) -> None:
    """Child process: the submission server until killed; SIGUSR1 writes its counters to a file."""
    handler = _CountingHandler()
    server = SubmissionServer(folder / "server.pem", folder / "server.key", handler=handler)  # type: ignore[arg-type]
    server.port = port
    server._controller.port = port  # noqa: SLF001 - bench-only: a fixed port chosen by the parent

    def dump(_sig: int, _frame: object) -> None:
        (folder / "counts.tmp").write_text(f"{handler.messages} {handler.bytes}")
        os.replace(folder / "counts.tmp", folder / "counts")

    signal.signal(signal.SIGUSR1, dump)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    folder: Path

    def counts(self) -> tuple[int, int]:
        """(messages, bytes) received so far."""
        (self.folder / "counts").unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not (self.folder / "counts").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the bench server does not answer")
            time.sleep(0.005)
        messages, size = (self.folder / "counts").read_text().split()
        return int(messages), int(size)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- one phase ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    rate: float  # messages per second
    seconds: float
    client_cpu_s: float
    server_cpu_s: float
    server_messages: int
    server_bytes: int


async def measured(server: Server, count: int, run: object) -> Phase:
    # Untimed: a full collection now, so that no phase pays for the garbage left by the
    # setup or by an earlier phase (the raw phases allocate too little to trigger one).
    gc.collect()
    before, cpu0, scpu0 = server.counts(), time.process_time(), server.cpu_s()
    seconds = await run  # type: ignore[misc]
    cpu, scpu, after = time.process_time() - cpu0, server.cpu_s() - scpu0, server.counts()
    return Phase(count / seconds, seconds, cpu, scpu, after[0] - before[0], after[1] - before[1])


async def raw_send(config: MailConfig, messages: list[tuple[str, bytes]], connections: int, *,
                   commands: bool) -> float:
    """aiosmtplib alone: the same bytes over the same number of connections. Returns seconds.

    ``commands``: MAIL (with SIZE), RCPT, DATA called directly, as the worker's transport
    does; else ``sendmail()`` (the same three round trips, plus address parsing and
    line-ending normalisation: slower, so only shown for reference).
    """
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)
    tls = make_tls_context(config)

    async def lane() -> None:
        smtp = aiosmtplib.SMTP(hostname=config.host, port=config.port, start_tls=True, tls_context=tls,
                               username=USERNAME, password=PASSWORD, local_hostname=config.local_hostname)
        await smtp.connect()
        while not queue.empty():
            address, raw = queue.get_nowait()
            if commands:
                await smtp.mail(config.sender, options=[f"SIZE={len(raw)}"])
                await smtp.rcpt(address)
                await smtp.data(raw)
            else:
                await smtp.sendmail(config.sender, [address], raw)
        await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(connections)))
    return time.perf_counter() - start


class CountingWorker(Worker):
    """The real worker; it only notes, after each committed record, how many messages went out."""

    sent = 0
    target = 0
    done: asyncio.Event

    async def record(self, jobs: Sequence[Job], outcomes: Sequence[Outcome], *, claim: int = 0) -> list[Job]:
        claimed = await super().record(jobs, outcomes, claim=claim)
        self.sent += sum(1 for o in outcomes if 200 <= o.code < 300)
        if self.sent >= self.target:
            self.done.set()
        return claimed


async def worker_drain(config: MailConfig, url: str, count: int) -> float:
    """Drain ``count`` events with ``Worker.run``; returns seconds until all are recorded sent."""
    db = Database(url)
    worker = await CountingWorker.create(db, config)
    assert isinstance(worker, CountingWorker)  # noqa: S101 - bench only
    worker.target, worker.done = count, asyncio.Event()
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    await worker.done.wait()
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    sent = await _count(db, OutboxEvent.state == "sent")
    await db.dispose()
    if sent != count:
        raise RuntimeError(f"only {sent} of {count} events are recorded sent")
    return elapsed


# ---- data ---------------------------------------------------------------------------------------


async def seed(db: Database, count: int, priority: int = 0) -> list[str]:
    """``count`` arrival events to 200 one-mailbox units (as many distinct addresses as possible)."""
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    doc = await add_document(db, sender, size=10)
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(min(count, 200))]
    now = utcnow()
    events = [OutboxEvent(kind="arrival", unit_id=units[i % len(units)].id, document_id=doc.id, priority=priority,
                          next_attempt_at=now, created_at=now, updated_at=now, payload={"i": i})
              for i in range(count)]
    async with db.session() as s:
        s.add_all(events)
        await s.commit()
    return [e.id for e in events]


async def _count(db: Database, where: object) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).where(where))).scalar_one())  # type: ignore[arg-type]


async def worker_bytes(config: MailConfig, url: str) -> list[tuple[str, bytes]]:
    """The exact messages the worker builds for these events (claimed on a throwaway copy)."""
    db = Database(url)
    worker = await Worker.create(db, config)
    jobs = await worker.claim(10**9)
    items = [item for job in jobs for item in worker.items(job)]
    await worker.prebuild(items)
    await db.dispose()
    return [(i.out.address, i.raw or b"") for i in items]


def copy_db(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


# ---- urgent latency -----------------------------------------------------------------------------


async def urgent_latency(config: MailConfig, url: str, backlog: int, urgent: int) -> tuple[list[float], int]:
    """Seconds from commit to ``sent`` of each urgent event, and how many normal ones were still queued."""
    db = Database(url)
    async with db.session() as s:
        first = (await s.execute(select(OutboxEvent).limit(1))).scalars().one()
    worker = await Worker.create(db, config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(1.0)  # the worker is busy with the backlog
    latencies = []
    for _ in range(urgent):
        now = utcnow()
        event = OutboxEvent(kind="arrival", unit_id=first.unit_id, document_id=first.document_id, priority=3,
                            next_attempt_at=now, created_at=now, updated_at=now, payload={"urgent": True})
        start = time.perf_counter()
        async with db.session() as s:
            s.add(event)
            await s.commit()
        while await _count(db, (OutboxEvent.id == event.id) & (OutboxEvent.state == "sent")) == 0:
            await asyncio.sleep(0.005)
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.2)
    left = await _count(db, (OutboxEvent.state != "sent") & (OutboxEvent.priority == 0))
    stop.set()
    await task
    await db.dispose()
    return latencies, left


# ---- report -------------------------------------------------------------------------------------


def _loop_name(args: argparse.Namespace) -> str:
    if args.loop == "uvloop":
        from importlib.metadata import version

        return f"uvloop {version('uvloop')}"
    return "asyncio"


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return f"{os.cpu_count()} × {model}"


def report(args: argparse.Namespace, phases: dict[str, list[Phase]], latencies: list[float], left: int,
           load: tuple[tuple[float, float, float], tuple[float, float, float]]) -> str:
    raws, mails, workers = phases["commands"], phases["sendmail"], phases["worker"]
    ratios = [w.rate / r.rate for r, w in zip(raws, workers, strict=True)]
    ratios_sendmail = [w.rate / r.rate for r, w in zip(mails, workers, strict=True)]
    med = statistics.median
    met = "yes" if med(ratios) >= 0.8 else "**NO**"
    lat_met = "yes" if max(latencies) < 2 else "**NO**"

    def rate_row(name: str, runs: list[Phase]) -> str:
        rates = [p.rate for p in runs]
        return f"| {name} | {med(rates):.0f} msg/s | {min(rates):.0f} – {max(rates):.0f} | | |"

    def cpu(runs: list[Phase], server: bool = False) -> str:
        return f"{med([p.server_cpu_s if server else p.client_cpu_s for p in runs]) / args.messages * 1e6:.0f} µs"

    n = args.connections
    rows = [
        f"Date {date.today().isoformat()}; machine {machine()} (`nproc` = {os.cpu_count()}); "
        f"Python {platform.python_version()}, aiosmtplib {aiosmtplib.__version__}, event loop {_loop_name(args)}; "
        f"load average "
        f"{load[0][0]:.2f} before, {load[1][0]:.2f} after (other jobs share the machine).",
        "",
        "| measure | median | min – max | target | met |",
        "|---|---|---|---|---|",
        rate_row(f"raw aiosmtplib MAIL/RCPT/DATA, {n} connections (**baseline**)", raws),
        rate_row(f"raw aiosmtplib `sendmail()`, {n} connections (reference)", mails),
        rate_row(f"outbox worker (SQLite), {n} connections", workers),
        f"| **worker / baseline** (per repetition) | **{med(ratios):.1%}** | {min(ratios):.0%} – {max(ratios):.0%} "
        f"| ≥ 80 % | {met} |",
        f"| worker / `sendmail()` (reference) | {med(ratios_sendmail):.0%} | {min(ratios_sendmail):.0%} – "
        f"{max(ratios_sendmail):.0%} | | |",
        f"| urgent enqueue→sent, {args.backlog:,} normal queued ({len(latencies)} urgent) | "
        f"**{med(latencies):.2f} s** | {min(latencies):.2f} – {max(latencies):.2f} s | < 2 s | {lat_met} |",
        "",
        f"Per repetition ({args.messages:,} messages, batch {args.batch}; baseline / worker msg/s, ratio): "
        + "; ".join(f"{r.rate:.0f} / {w.rate:.0f} ({x:.0%})" for r, w, x in zip(raws, workers, ratios, strict=True))
        + ".",
        f"CPU per message (median, whole client process): baseline {cpu(raws)}, `sendmail()` {cpu(mails)}, "
        f"worker {cpu(workers)}; server {cpu(raws, True)} during the baseline, {cpu(workers, True)} during the worker.",
        f"Server received per phase (median): baseline {med([p.server_messages for p in raws]):.0f} messages, "
        f"{med([p.server_bytes for p in raws]) / max(1, args.messages):.0f} B each; worker "
        f"{med([p.server_messages for p in workers]):.0f} messages, "
        f"{med([p.server_bytes for p in workers]) / max(1, args.messages):.0f} B each. "
        f"Urgent runs: {', '.join(f'{x:.2f}' for x in latencies)} s; {left:,} normal still queued at the end.",
    ]
    return "\n".join(rows)


def write_doc(doc: Path, command: str, text: str) -> None:
    begin, end = "<!-- bench_mail:begin -->", "<!-- bench_mail:end -->"
    block = f"{begin}\nCommand (repository root, venv active):\n\n```sh\n{command}\n```\n\n{text}\n{end}"
    content = doc.read_text(encoding="utf-8")
    if begin in content:
        content = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, content, flags=re.S)
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(content, encoding="utf-8")


# ---- main ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    make_pki(folder, MAIL_FROM)
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), str(port)], stdout=subprocess.PIPE)
    load0 = os.getloadavg()
    try:
        if child.stdout is None or child.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bench server did not start")
        server = Server(child, folder)
        config = MailConfig.zimbra("127.0.0.1", port=port, username=USERNAME, password=PASSWORD,
                                   ca_file=folder / "ca.pem", mail_from=MAIL_FROM, pool_size=args.connections,
                                   batch_size=args.batch, poll_interval_s=0.05, data_dir=folder, attach_pdf=False)
        template = folder / "template.db"
        seed_db = await migrated(f"sqlite+aiosqlite:///{template}")
        await seed(seed_db, args.messages)
        await seed_db.dispose()
        messages = await worker_bytes(config, copy_db(template, folder / "bytes.db"))
        gc.collect()
        gc.freeze()  # as ``docexchange worker`` and the API do once started
        phases: dict[str, list[Phase]] = {"commands": [], "sendmail": [], "worker": []}
        order = list(phases)
        for rep in range(args.reps):
            url = copy_db(template, folder / f"drain{rep}.db")
            for side in order[rep % 3:] + order[: rep % 3]:  # who goes first rotates
                if side == "worker":
                    run = worker_drain(config, url, args.messages)
                else:
                    run = raw_send(config, messages, args.connections, commands=side == "commands")
                phases[side].append(await measured(server, args.messages, run))
            c, w = phases["commands"][-1].rate, phases["worker"][-1].rate
            print(f"rep {rep + 1}: raw {c:.0f} msg/s (sendmail {phases['sendmail'][-1].rate:.0f}), "
                  f"worker {w:.0f} msg/s ({w / c:.0%})", file=sys.stderr, flush=True)
        backlog_template = folder / "backlog.db"
        backlog_db = await migrated(f"sqlite+aiosqlite:///{backlog_template}")
        await seed(backlog_db, args.backlog)
        await backlog_db.dispose()
        latencies, left = await urgent_latency(config, f"sqlite+aiosqlite:///{backlog_template}", args.backlog,
                                               args.urgent)
    finally:
        child.kill()
        child.wait()
        shutil.rmtree(folder, ignore_errors=True)
    text = report(args, phases, latencies, left, (load0, os.getloadavg()))
    print(text)
    if args.doc:
        command = "python bench/bench_mail.py " + " ".join(sys.argv[1:])
        write_doc(Path(args.doc), command, text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--urgent", type=int, default=5)
    parser.add_argument("--doc", help="rewrite the bench_mail block of this markdown file (e.g. docs/mail.md)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of all three phases (default uvloop: the service's, see the module doc)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
