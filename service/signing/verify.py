"""Verification entry points: a warm pool of worker processes, each bounded in
address space (RLIMIT_AS: ``memory_mb`` more than it was forked with) and each file
bounded in time.

Isolation: the workers parse hostile files, so they hold nothing worth taking. They are
forked from multiprocessing's fork server, a fresh interpreter started for them that
never held the service's keys (a fork of the service would carry its decrypted CA and
signing keys), with every ``DOCEX_`` setting (the key passphrase, the SMTP password, the
PKCS#11 PIN, the database URL) left out of the environment it and they inherit.

Keep one :class:`Verifier` for the life of the app (bulk verification of
1,000 documents reuses the warm workers and their parsed trust roots).

Throughput: each worker parses the trust material once (at start-up, not per
file) and installs the exact speed-ups of :mod:`service.signing._speedups`;
no more files are handed to the pool than there are workers, so a file's
timeout measures its own verification, not its wait behind a long queue.

Fairness: a file any user sends to be checked (``verify_for``) is one of theirs at a
time, and such files together hold at most all workers but one, so the verification
that precedes every send never waits behind files that run to the time limit. With
``requesters_dir`` the one-at-a-time holds across every process that shares the folder
(``serve --workers N``): a user's running file holds a lock on a file there (a POSIX
record lock: the process's own, which the verification workers it forks do not inherit).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import multiprocessing
import os
import resource
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from service.signing.errors import VerifierBusyError
from service.signing.report import Verdict, VerificationReport, finding
from service.signing.trust import TrustConfig

__all__ = ["Verifier", "VerifierOptions", "verify_pdf"]


@dataclass(frozen=True)
class VerifierOptions:
    timeout_s: float = 60.0
    memory_mb: int = 1536  # address space a worker may add to what it inherits from the parent
    # At least two, even on one core: files users send to be checked hold all workers but one.
    workers: int = max(2, min(os.cpu_count() or 1, 4))
    waiting_per_worker: int = 4  # files users sent to be checked that may wait for a worker, per worker
    # Where a user whose file is being checked holds a lock, seen by every process that shares
    # the folder; None: by this process alone.
    requesters_dir: Path | None = None

    @property
    def on_request(self) -> int:
        """Workers that files users send to be checked may hold at once: all but one (with a
        single worker, asked for explicitly, that one)."""
        return max(1, self.workers - 1)


# -- worker process side ------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(memory_mb: int, trust: TrustConfig) -> None:
    from service.signing import _speedups
    from service.signing._validate import _Trust

    # pyHanko logs every rejected file with a traceback; the report carries the reason.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    limit = _memory_limit(memory_mb)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _speedups.install()
    _WORKER["trust"] = _Trust(trust)


def _memory_limit(memory_mb: int) -> int:
    """The worker's RLIMIT_AS: ``memory_mb`` on top of the address space it starts with.

    Workers are forked, so they start with the whole address space of the process they are
    forked from (the fork server, with pyHanko loaded), in use there, not here. As an
    absolute cap, ``memory_mb`` once left a worker forked from a large parent no room:
    allocations failed in the middle of pyHanko's parsing (a MemoryError it reports as
    PdfReadError), and every file came out indeterminate.
    """
    limit = _address_space() + memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    return limit if hard == resource.RLIM_INFINITY else min(limit, hard)


def _address_space() -> int:
    """Bytes of address space this process has now (VmSize; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _without_settings(name: str) -> bool:
    return name.startswith("DOCEX_") or name == "PGPASSWORD"


def _fork_server_context() -> multiprocessing.context.BaseContext:
    """The workers' start method: forked from the fork server, started (once per process,
    or again if it died) with the service's settings out of the environment it inherits;
    it loads the verification code once, for every worker it forks."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    # The fork server is a new interpreter started with the process's environment as it is
    # at that moment: the settings are out of it for as long as it takes to start.
    kept = {name: os.environ.pop(name) for name in list(os.environ) if _without_settings(name)}
    try:
        forkserver.ensure_running()
    finally:
        os.environ.update(kept)
    return context


def _ready() -> bool:
    return "trust" in _WORKER


def _work(path: str) -> dict[str, Any]:
    from service.signing._validate import validate_file

    try:
        report = asyncio.run(validate_file(Path(path), _WORKER["trust"]))
    except MemoryError:
        return _failure(Path(path), "TIMEOUT", "memory limit reached").to_dict()
    return report.to_dict()


# -- service side ----------------------------------------------------------------
class Verifier:
    """Owns the worker pool; ``async with Verifier(trust) as v: await v.verify(p)``."""

    def __init__(self, trust: TrustConfig, options: VerifierOptions = VerifierOptions()) -> None:
        self._trust = trust
        self._options = options
        self._pool: ProcessPoolExecutor | None = None
        # Per event loop (a Verifier may outlive one): all workers, and those files users send may hold.
        self._slots: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}
        self._requesters: set[str] = set()  # who has a file in verify_for now

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def warm_up(self) -> None:
        """Start every worker now (imports, trust parsing) instead of on the first files."""
        loop = asyncio.get_running_loop()
        pool = self._get_pool()
        await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self._options.workers)))

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._options.workers, mp_context=_fork_server_context(),
                initializer=_init_worker,
                initargs=(self._options.memory_mb, self._trust),
            )
        return self._pool

    def _semaphore(self, kind: str = "all") -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        held = self._slots.get(kind)
        if held is None or held[0] is not loop:
            size = self._options.workers if kind == "all" else self._options.on_request
            held = self._slots[kind] = (loop, asyncio.Semaphore(size))
        return held[1]

    def check_room(self, requester: str) -> None:
        """Whether ``verify_for`` would take a file of ``requester`` now (ask before receiving
        it). Raises VerifierBusyError."""
        self._check_here(requester)
        with self._held_for(requester):  # free in the other processes too
            pass

    def _check_here(self, requester: str) -> None:
        """``check_room`` as this process alone knows it. Raises VerifierBusyError."""
        if requester in self._requesters:
            raise self._still_running()
        if len(self._requesters) >= self._options.on_request * (1 + self._options.waiting_per_worker):
            raise VerifierBusyError("verification is busy with other users' files: try again in a minute",
                                    retry_after=self._retry_after())

    async def verify_for(self, requester: str, path: Path) -> VerificationReport:
        """A file ``requester`` sent to be checked: theirs one at a time, and never on the
        worker kept for sends. Raises VerifierBusyError when theirs is still running (here or
        in another process sharing ``requesters_dir``) or too many files are waiting already."""
        self._check_here(requester)
        with self._held_for(requester):  # refuses it when another process holds it
            self._requesters.add(requester)
            try:
                async with self._semaphore("requested"):
                    return await self.verify(path)
            finally:
                self._requesters.discard(requester)

    def _retry_after(self) -> int:
        return max(1, round(self._options.timeout_s / 4))

    def _still_running(self) -> VerifierBusyError:
        return VerifierBusyError("a file you sent is still being verified: send the next one when its report "
                                 "is back", retry_after=self._retry_after())

    @contextmanager
    def _held_for(self, requester: str) -> Iterator[None]:
        """``requester``'s lock in ``requesters_dir`` (a file named by a hash of the id),
        held until the block ends; the kernel lets it go if the process dies. Raises
        VerifierBusyError when another process holds it.

        A record lock belongs to the process: one taken here never conflicts with another
        taken here, and closing any descriptor of the file lets it go. So it is only ever
        taken for a requester not in ``_requesters``, and held while they are in it."""
        folder = self._options.requesters_dir
        if folder is None:
            yield
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / hashlib.sha256(requester.encode()).hexdigest()[:32], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: another process holds it
                raise self._still_running() from None
            yield
        finally:
            os.close(fd)

    async def verify(self, path: Path) -> VerificationReport:
        """Never raises for a bad file: every problem becomes a non-passed report."""
        async with self._semaphore():
            pool = self._get_pool()
            report = await self._run(pool, path)
            if report is None:
                # another file's timeout killed the pool under this one: retry once
                report = await self._run(self._get_pool(), path)
        return report or _failure(path, "TIMEOUT", "worker died (memory limit?)")

    async def _run(self, pool: ProcessPoolExecutor, path: Path) -> VerificationReport | None:
        """The report, or None when the pool was killed for another file meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(pool, _work, str(path))
            data = await asyncio.wait_for(future, self._options.timeout_s)
        except TimeoutError:
            self._kill_pool(pool)
            return _failure(path, "TIMEOUT", f"more than {self._options.timeout_s} s")
        except BrokenProcessPool as exc:
            collateral = pool is not self._pool
            self._kill_pool(pool)
            return None if collateral else _failure(path, "TIMEOUT", f"worker died (memory limit?): {exc}")
        except Exception as exc:  # noqa: BLE001 - a bad file must never crash the caller
            return _failure(path, "GENERIC", f"{type(exc).__name__}: {exc}")
        return VerificationReport.from_dict(data)

    async def verify_many(self, paths: list[Path]) -> list[VerificationReport]:
        return list(await asyncio.gather(*(self.verify(p) for p in paths)))

    def _kill_pool(self, pool: ProcessPoolExecutor) -> None:
        # A stuck worker cannot be cancelled; kill the pool's processes and start afresh.
        if pool is self._pool:
            self._pool = None
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # private, but the only handle
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)


async def verify_pdf(
    path: Path, trust: TrustConfig, *, timeout_s: float = 60.0, memory_mb: int = 1536
) -> VerificationReport:
    """Verify one file in a bounded worker process (one-off; prefer a shared Verifier)."""
    async with Verifier(trust, VerifierOptions(timeout_s=timeout_s, memory_mb=memory_mb, workers=1)) as verifier:
        return await verifier.verify(path)


def _failure(path: Path, code: str, detail: str) -> VerificationReport:
    return VerificationReport(
        file=path.name,
        sha256="",
        verdict=Verdict.INDETERMINATE,
        signatures=[],
        fields_counted=0,
        sig_fields_counted=0,
        fields_enumerated=0,
        findings=[finding(code, detail)],
        checked_at=datetime.now(UTC).isoformat(),
    )
